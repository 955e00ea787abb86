"""File digests remembered in a sidecar: SHA-256 and MD5 side by side, recomputed when the file changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from openhorde.worker.models import hashes
from openhorde.worker.models.hashes import file_digest, record_digests, sidecar


def test_both_digests_are_kept_in_one_sidecar_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights" * 1000)
    calls: list[str] = []
    real = hashes._hash_file

    def counting(target: Path, algorithm: hashes.Algorithm = "sha256") -> str:
        calls.append(algorithm)
        return real(target, algorithm)

    monkeypatch.setattr(hashes, "_hash_file", counting)
    assert file_digest(path, "sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(path, "md5") == hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    assert file_digest(path, "sha256") == file_digest(path, "sha256")
    assert calls == ["sha256", "md5"]
    assert set(json.loads(sidecar(path).read_text())) == {"sha256", "md5", "size", "mtime_ns"}

    path.write_bytes(b"other weights")  # new size: both digests are stale
    file_digest(path, "md5")
    assert calls == ["sha256", "md5", "md5"]
    assert "sha256" not in json.loads(sidecar(path).read_text())


def test_a_digest_recorded_at_download_is_trusted(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    record_digests(path, {"sha256": "a" * 64})
    assert file_digest(path) == "a" * 64  # taken while downloading: the file is not read again
