"""The worker's model reference: fetched and cached in the store, used offline, made into catalogue entries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from openhorde.model_reference import parse
from openhorde.worker.models.reference import ReferenceUnavailable, cache_path, load_reference, to_entry
from openhorde.worker.models.store import ModelStore
from tests.file_server import FileServer, reference_json, reference_record, serving

CKPT = b"checkpoint bytes"


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as httpd:
        yield httpd


def publish_reference(server: FileServer) -> str:
    url = server.publish("deliberate.safetensors", CKPT)
    records = [
        reference_record("Deliberate", files=[("deliberate.safetensors", CKPT, url)], trigger=["delib"]),
        reference_record("Stable Cascade 1.0", baseline="stable_cascade", files=[("c.safetensors", CKPT, url)]),
    ]
    return server.publish("stable_diffusion.json", reference_json(*records))


def test_a_fetched_reference_is_cached_and_used_when_the_server_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    with serving() as server:
        url = publish_reference(server)
        online = load_reference(url, store)
    assert not online.from_cache and set(online.models) == {"Deliberate", "Stable Cascade 1.0"}
    assert cache_path(store, url).is_file()

    caplog.set_level(logging.WARNING)
    offline = load_reference(url, store)  # the server is gone now
    assert offline.from_cache and offline.models == online.models
    assert abs((offline.fetched_at - online.fetched_at).total_seconds()) < 1
    warning = next(record for record in caplog.records if getattr(record, "event", None) == "reference_cached")
    assert f"{online.fetched_at:%Y-%m-%d %H:%M}" in warning.getMessage()


def test_a_broken_answer_falls_back_on_the_cache_too(tmp_path: Path, server: FileServer) -> None:
    store = ModelStore(tmp_path)
    url = publish_reference(server)
    load_reference(url, store)
    server.publish("stable_diffusion.json", b"<html>busy</html>")
    assert load_reference(url, store).from_cache


def test_without_a_cached_copy_an_unreachable_reference_says_what_to_do(tmp_path: Path, server: FileServer) -> None:
    with pytest.raises(ReferenceUnavailable, match=r"HTTP 404.*no copy of it is cached.*local file"):
        load_reference(server.url("missing.json"), ModelStore(tmp_path))


def test_a_local_reference_file_is_read_directly(tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    path.write_bytes(reference_json(reference_record("Local", files=[("l.ckpt", CKPT, "http://x/l.ckpt")])))
    reference = load_reference(str(path), ModelStore(tmp_path / "store"))
    assert list(reference.entries()) == ["Local"] and reference.source == str(path)
    with pytest.raises(ReferenceUnavailable, match="cannot read it"):
        load_reference(str(tmp_path / "nothing.json"), ModelStore(tmp_path))


def test_records_become_entries_with_their_files_flags_and_config() -> None:
    files = [
        ("sub/model.safetensors", CKPT, "http://h/model"),
        ("sub/cfg/model_index.json", b"{}", "http://h/index"),
        ("sub/cfg/unet/config.json", b"{}", "http://h/unet"),
    ]
    record = reference_record(
        "XL",
        baseline="stable_diffusion_xl",
        files=files,
        nsfw=True,
        inpainting=True,
        trigger=["xl style"],
        features_not_supported=["hires_fix", "loras"],
    )
    entry = to_entry(parse({"XL": record})["XL"])
    assert entry is not None
    assert (entry.baseline, entry.nsfw, entry.inpainting, entry.source) == ("sdxl", True, True, "reference")
    assert (entry.file, entry.url, entry.config) == ("sub/model.safetensors", "http://h/model", "sub/cfg")
    assert entry.triggers == ("xl style",) and entry.size_bytes == len(CKPT) + 4
    assert not entry.supports("hires_fix") and not entry.supports("loras") and entry.supports("inpainting")
    # The yaml upstream lists has no download and is not fetched; the checkpoint comes last.
    assert [file.path for file in entry.files()] == [
        "sub/cfg/model_index.json",
        "sub/cfg/unet/config.json",
        "sub/model.safetensors",
    ]


def test_unloadable_records_say_why(tmp_path: Path, server: FileServer) -> None:
    reference = load_reference(publish_reference(server), ModelStore(tmp_path))
    assert list(reference.entries()) == ["Deliberate"]
    assert "stable_cascade model, which this worker cannot load" in str(reference.why_unusable("Stable Cascade 1.0"))
    no_files = parse({"Empty": {**reference_record("Empty"), "config": {"files": [], "download": []}}})["Empty"]
    assert to_entry(no_files) is None
    assert json.loads(cache_path(ModelStore(tmp_path), server.url("stable_diffusion.json")).read_text())
