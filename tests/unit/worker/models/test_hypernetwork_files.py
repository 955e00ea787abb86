"""Hypernetwork files from the catalogue (downloaded and checked like LoRAs) or dropped into the model store."""

from __future__ import annotations

from pathlib import Path

import pytest

from openhorde.worker.generation.hypernetworks import load_hypernetwork
from openhorde.worker.models.catalogue import CatalogueError, parse_catalogue
from openhorde.worker.models.store import ChecksumMismatch, ModelStore
from tests.adapter_files import make_hypernetwork
from tests.file_server import serving, sha256


def test_a_catalogued_hypernetwork_is_downloaded_verified_and_loads(tmp_path: Path) -> None:
    body = make_hypernetwork(tmp_path / "made.pt", seed=2).read_bytes()
    with serving() as server:
        url = server.publish("files/anime.pt", body)
        catalogue = parse_catalogue({"hypernetworks": [{"name": "anime", "url": url, "sha256": sha256(body)}]})
        entry = catalogue.hypernetwork("anime")
        assert entry is not None and entry.kind == "hypernetwork"
        assert entry.file == "hypernetworks/anime.pt"
        assert catalogue.adapter("hypernetwork", "anime") is entry and catalogue.adapter("lora", "anime") is None
        store = ModelStore(tmp_path / "store")
        path = store.ensure(entry, progress=False)
        assert path == tmp_path / "store" / "hypernetworks" / "anime.pt" and path.read_bytes() == body
        assert set(load_hypernetwork(path).layers) == {32, 64}
        wrong = parse_catalogue({"hypernetworks": [{"name": "bad", "url": url, "sha256": "0" * 64}]})
        bad = wrong.hypernetwork("bad")
        assert bad is not None
        with pytest.raises(ChecksumMismatch, match="SHA-256 is"):
            store.ensure(bad, progress=False)


def test_a_hypernetwork_in_the_store_is_found_by_plain_name_only(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    (tmp_path / "hypernetworks").mkdir()
    make_hypernetwork(tmp_path / "hypernetworks" / "ink.pt", seed=3)
    (tmp_path / "secret.pt").write_bytes(b"x")
    assert store.hypernetwork_file("ink") == tmp_path / "hypernetworks" / "ink.pt"
    assert store.hypernetwork_file("absent") is None
    assert store.hypernetwork_file("../secret") is None and store.hypernetwork_file("") is None


def test_hypernetwork_entries_are_checked_like_other_adapters() -> None:
    with pytest.raises(CatalogueError, match=r"hypernetworks\[0\] \('h'\): unknown key\(s\) \['strength'\]"):
        parse_catalogue({"hypernetworks": [{"name": "h", "strength": 1}]})
    with pytest.raises(CatalogueError, match="appears twice"):
        parse_catalogue({"hypernetworks": [{"name": "h"}, {"name": "h"}]})
