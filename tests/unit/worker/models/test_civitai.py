"""LoRAs and TIs on demand: resolved through a CivitAI-shaped API on loopback, fetched, checked, cached."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from openhorde.worker.generation.adapters import AdapterLookup, AdapterUnusable
from openhorde.worker.models.civitai import Civitai, civitai_baseline
from openhorde.worker.models.download import ChecksumMismatch
from openhorde.worker.models.store import ModelStore
from tests.civitai_server import API, model, publish_model, publish_search, version
from tests.file_server import FileServer, serving

LORA = os.urandom(4096)
OTHER = os.urandom(4096)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as httpd:
        publish_model(httpd, model(101, "Shiny Style", [version(httpd, 1001, LORA), version(httpd, 1000, OTHER)]))
        yield httpd


def civitai(server: FileServer, tmp_path: Path, **over: object) -> Civitai:
    options: dict[str, object] = {"api_url": server.url(API), "baselines": {"tiny-sd1": "sd1", "big-xl": "sdxl"}}
    options.update(over)
    return Civitai(ModelStore(tmp_path), **options)  # type: ignore[arg-type]


def lora(name: str, is_version: bool = False, model_name: str = "tiny-sd1") -> AdapterLookup:
    return AdapterLookup("lora", name, model_name, is_version)


def test_a_lora_by_model_id_is_its_newest_version(server: FileServer, tmp_path: Path) -> None:
    found = civitai(server, tmp_path)(lora("101"))
    assert found.path.read_bytes() == LORA and found.triggers == ("shiny", "glossy")
    assert found.path.parent == tmp_path / "civitai" / "loras"


def test_a_lora_by_version_id(server: FileServer, tmp_path: Path) -> None:
    assert civitai(server, tmp_path)(lora("1000", is_version=True)).path.read_bytes() == OTHER
    assert server.seen[0] == f"{API}/model-versions/1000"


def test_a_lora_by_name_prefers_the_exact_match(server: FileServer, tmp_path: Path) -> None:
    near = model(7, "Shiny Style XL", [version(server, 70, OTHER)])
    exact = model(101, "Shiny Style", [version(server, 1001, LORA)])
    publish_search(server, near, exact)
    assert civitai(server, tmp_path)(lora("shiny style")).path.read_bytes() == LORA
    query = parse_qs(urlparse(server.seen[0]).query)
    assert query["query"] == ["shiny style"] and query["types"] == ["LORA", "LoCon"]


def test_a_textual_inversion_by_name(server: FileServer, tmp_path: Path) -> None:
    publish_search(server, model(9, "EasyNegative", [version(server, 90, OTHER)], kind="TextualInversion"))
    found = civitai(server, tmp_path)(AdapterLookup("ti", "easynegative", "tiny-sd1"))
    assert found.path.read_bytes() == OTHER and found.path.parent.name == "textual_inversions"


def test_a_file_whose_hash_differs_from_civitais_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.publish("files/1001.safetensors", b"not the published file")
    with pytest.raises(ChecksumMismatch, match="discarded"):
        civitai(server, tmp_path)(lora("101"))


def test_adapters_that_do_not_suit_the_job_are_refused_with_a_reason(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(AdapterUnusable, match=r"SD 1\.5, the model big-xl is sdxl") as caught:
        civitai(server, tmp_path)(lora("101", model_name="big-xl"))
    assert caught.value.value == "baseline_mismatch"
    publish_model(server, model(5, "Flux thing", [version(server, 50, LORA, baseModel="Flux.1 D")]))
    with pytest.raises(AdapterUnusable) as caught:
        civitai(server, tmp_path)(lora("5"))
    assert caught.value.value == "baseline_mismatch"
    unhashed = version(server, 60, LORA)
    unhashed["files"][1]["hashes"] = {}
    publish_model(server, model(6, "Unhashed", [unhashed]))
    with pytest.raises(AdapterUnusable, match="no SHA-256"):
        civitai(server, tmp_path)(lora("6"))
    publish_model(server, model(8, "Spicy", [version(server, 80, LORA)], nsfw=True))
    with pytest.raises(AdapterUnusable, match="NSFW"):
        civitai(server, tmp_path, nsfw=False)(lora("8"))
    publish_model(server, model(4, "A checkpoint", [version(server, 40, LORA)], kind="Checkpoint"))
    with pytest.raises(AdapterUnusable, match="is a Checkpoint, not a lora"):
        civitai(server, tmp_path)(lora("4"))
    assert not list(tmp_path.rglob("*.safetensors"))  # nothing was downloaded for any of them


def test_a_used_adapter_is_served_from_the_cache_when_civitai_is_down(tmp_path: Path) -> None:
    with serving() as server:
        publish_model(server, model(101, "Shiny Style", [version(server, 1001, LORA)]))
        first = civitai(server, tmp_path)(lora("101"))
        dead = civitai(server, tmp_path)
    assert dead(lora("101")) == first  # the server is gone
    with pytest.raises(AdapterUnusable, match="lookup of '999' failed") as caught:
        dead(lora("999"))
    assert caught.value.value == "download_failed"


def test_the_cache_deletes_the_least_recently_used_beyond_its_cap(server: FileServer, tmp_path: Path) -> None:
    for number in (1, 2, 3):
        publish_model(server, model(number, f"L{number}", [version(server, 10 + number, os.urandom(3000))]))
    resolver = civitai(server, tmp_path, cache_bytes=7000)  # room for two
    first = resolver(lora("1"))
    second = resolver(lora("2"))
    time.sleep(0.01)
    resolver(lora("1"))  # used again: now the second is the least recently used
    third = resolver(lora("3"))
    assert first.path.exists() and third.path.exists() and not second.path.exists()


def test_civitai_base_models_map_to_baselines() -> None:
    assert [
        civitai_baseline(name) for name in ["SD 1.5", "SD 2.1 768", "SDXL 1.0", "Pony", "Illustrious", "Flux.1 D"]
    ] == [
        "sd1",
        "sd2",
        "sdxl",
        "sdxl",
        "sdxl",
        None,
    ]
