"""File digests (SHA-256, MD5) remembered in a ``<file>.sha256`` sidecar, so big checkpoints are hashed once.

The sidecar holds the file's size and modification time next to its digests; when either changed, the
file is hashed again. The name stays ``.sha256`` (it held only that digest before MD5 was added), and an
MD5 is recorded in the same JSON object when a source gives only an MD5 to check against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Algorithm = Literal["sha256", "md5"]
HASH_CHUNK_BYTES = 8 << 20
SIDECAR_SUFFIX = ".sha256"


def new_digest(algorithm: Algorithm) -> hashlib._Hash:
    """A fresh hash object of ``algorithm``."""
    # MD5 only checks integrity against the model reference's published sums; it is not used for security.
    return hashlib.sha256() if algorithm == "sha256" else hashlib.md5(usedforsecurity=False)


def _hash_file(path: Path, algorithm: Algorithm = "sha256") -> str:
    """The digest of a file, read in large chunks."""
    digest = new_digest(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """Where the digests of ``path`` are remembered."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict[str, str]:
    """The digests the sidecar records, if the file still has the size and modification time it had then."""
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return {}
    return {key: value for key, value in record.items() if key in ("sha256", "md5") and isinstance(value, str)}


def record_digests(path: Path, digests: dict[str, str]) -> None:
    """Remember ``digests`` (by algorithm) for the file as it is now, keeping the ones already known."""
    stat = path.stat()
    record: dict[str, object] = {**_read_sidecar(path), **digests, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        sidecar(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:
        # A read-only store still works; the file is simply hashed again next time.
        logger.warning("Could not write %s: %s", sidecar(path), exc)


def file_digest(path: Path, algorithm: Algorithm = "sha256") -> str:
    """The digest of ``path``, from its sidecar when the file has not changed since, else hashed (and recorded)."""
    cached = _read_sidecar(path).get(algorithm)
    if cached is not None:
        return cached
    started = time.perf_counter()
    value = _hash_file(path, algorithm)
    logger.info("Hashed %s (%s) in %.1f s", path.name, algorithm, time.perf_counter() - started)
    record_digests(path, {algorithm: value})
    return value


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path`` (see ``file_digest``)."""
    return file_digest(path, "sha256")
