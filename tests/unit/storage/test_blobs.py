"""The local blob store's copy: a hard link that later writes to the source never change."""

from __future__ import annotations

from pathlib import Path

import pytest

from openhorde.errors import BlobNotFound
from openhorde.storage.blobs import BlobStore


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", "secret", "http://127.0.0.1:7001", 60)


async def test_a_copy_keeps_what_the_source_held_when_copied(store: BlobStore) -> None:
    await store.put("results/job.webp", b"first")
    await store.copy("results/job.webp", "images/job.webp")
    await store.put("results/job.webp", b"second")
    assert await store.get("images/job.webp") == b"first"
    assert await store.get("results/job.webp") == b"second"


async def test_copying_onto_an_existing_key_replaces_it(store: BlobStore) -> None:
    await store.put("results/a.webp", b"a")
    await store.put("images/a.webp", b"old")
    await store.copy("results/a.webp", "images/a.webp")
    assert await store.get("images/a.webp") == b"a"
    assert sorted(p.name for p in (store.root / "images").iterdir()) == ["a.webp"]  # no temporary file left


async def test_copying_again_what_a_key_already_holds_leaves_no_temporary_file(store: BlobStore) -> None:
    """rename() does nothing when both names are links to one file: the temporary link must still go (a second
    submit of one job copies its upload again; a temporary link left behind made the next copy fail)."""
    await store.put("results/a.webp", b"a")
    for _ in range(3):
        await store.copy("results/a.webp", "images/a.webp")
    assert await store.get("images/a.webp") == b"a"
    assert sorted(p.name for p in (store.root / "images").iterdir()) == ["a.webp"]


async def test_copying_nothing_is_blob_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.copy("results/missing.webp", "images/missing.webp")
    assert not await store.exists("images/missing.webp")
