"""The model store: the folder where checkpoints, LoRAs and textual inversions live, and how files get there.

A file that is missing is downloaded (streamed into ``<file>.partial``, checked, then renamed, so a
half-written file never has the final name). A file that is present is checked against its SHA-256
once; the result is kept in a ``<file>.sha256`` sidecar together with the file's size and
modification time, so multi-gigabyte checkpoints are not hashed again on every start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from openhorde.worker.models.catalogue import AdapterEntry, ModelEntry

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3
"""How many times a download is tried before giving up (network errors and 5xx/429 answers only)."""
DEFAULT_RETRY_DELAY_SECONDS = 2.0
"""The wait before the second attempt; it doubles for each further attempt."""
DEFAULT_TIMEOUT_SECONDS = 60.0
"""The longest silence tolerated from the server while connecting or between two chunks."""
CHUNK_BYTES = 1 << 20
HASH_CHUNK_BYTES = 8 << 20
SIDECAR_SUFFIX = ".sha256"
PARTIAL_SUFFIX = ".partial"


class ModelUnavailable(RuntimeError):
    """The model's files are not on this machine and cannot be fetched."""


class DownloadFailed(ModelUnavailable):
    """A download failed after all its attempts, or the server refused it."""


class ChecksumMismatch(RuntimeError):
    """A file's SHA-256 is not the one the catalogue expects."""

    def __init__(self, path: Path, expected: str, actual: str, *, deleted: bool = False) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        advice = "the download was discarded" if deleted else "delete or replace the file"
        super().__init__(f"{path}: SHA-256 is {actual}, but {expected} was expected ({advice}).")


def _hash_file(path: Path) -> str:
    """The SHA-256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_sidecar(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        _sidecar(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:
        # A read-only store still works; the file is simply hashed again next time.
        logger.warning("Could not write %s: %s", _sidecar(path), exc)


def _cached_sha256(path: Path) -> str | None:
    """The hash the sidecar records, if the file still has the size and modification time it had then."""
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    sha256 = record.get("sha256")
    return sha256 if isinstance(sha256, str) else None


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``, from its sidecar when the file has not changed since, else hashed (and recorded)."""
    cached = _cached_sha256(path)
    if cached is not None:
        return cached
    started = time.perf_counter()
    sha256 = _hash_file(path)
    logger.info("Hashed %s in %.1f s", path.name, time.perf_counter() - started)
    _write_sidecar(path, sha256)
    return sha256


class ModelStore:
    """The folder the worker keeps model files in; relative catalogue paths are relative to it."""

    def __init__(
        self,
        root: Path,
        *,
        retry_delay_s: float = DEFAULT_RETRY_DELAY_SECONDS,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.root = root.expanduser()
        self.retry_delay_s = retry_delay_s
        self.timeout_s = timeout_s
        self._transport = transport

    def resolve(self, entry: ModelEntry | AdapterEntry) -> Path:
        """Where the entry's file or folder lives (whether or not it is there yet)."""
        if entry.file is None:
            raise ModelUnavailable(f"{_label(entry)} has no file in the catalogue.")
        return self.path_for(entry.file)

    def path_for(self, file: str) -> Path:
        """An absolute path for a catalogue ``file``: as given if absolute, else under the store's root."""
        path = Path(file).expanduser()
        return path if path.is_absolute() else self.root / path

    def ensure(self, entry: ModelEntry | AdapterEntry, progress: bool = True) -> Path:
        """The entry's file or folder, downloaded and verified if need be."""
        path = self.resolve(entry)
        label = _label(entry)
        if isinstance(entry, ModelEntry) and not entry.is_single_file:
            if path.is_dir():
                return path
            raise ModelUnavailable(f"{label}: the diffusers folder {path} does not exist.")
        try:
            return self.ensure_file(path, entry.url, entry.sha256, progress=progress)
        except ModelUnavailable as exc:
            raise type(exc)(f"{label}: {exc}") from exc

    def ensure_file(self, path: Path, url: str | None, sha256: str | None, progress: bool = True) -> Path:
        """``path``, checked against ``sha256``; downloaded from ``url`` first when it is missing."""
        expected = sha256.lower() if sha256 else None
        if path.is_file():
            if expected is not None:
                actual = file_sha256(path)
                if actual != expected:
                    raise ChecksumMismatch(path, expected, actual)
            return path
        if url is None:
            raise ModelUnavailable(f"{path} does not exist and the catalogue gives no download URL for it.")
        self._download(url, path, expected, progress)
        return path

    def _download(self, url: str, path: Path, expected: str | None, progress: bool) -> None:
        """Fetch ``url`` into ``path``: stream to a partial file, check the hash, rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        started = time.perf_counter()
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                actual = self._stream(url, partial, path.name, progress)
                break
            except (httpx.TransportError, _RetryableStatus) as exc:
                partial.unlink(missing_ok=True)
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise DownloadFailed(f"Downloading {url} failed {attempt} times; last error: {exc}") from exc
                delay = self.retry_delay_s * 2 ** (attempt - 1)
                logger.warning("Download of %s failed (%s); retrying in %.0f s", url, exc, delay)
                time.sleep(delay)
            except httpx.HTTPStatusError as exc:
                partial.unlink(missing_ok=True)
                raise DownloadFailed(f"Downloading {url} failed: HTTP {exc.response.status_code}") from exc
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        if expected is not None and actual != expected:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(path, expected, actual, deleted=True)
        os.replace(partial, path)
        _write_sidecar(path, actual)
        logger.info("Downloaded %s (%d bytes) in %.1f s", path.name, path.stat().st_size, time.perf_counter() - started)

    def _stream(self, url: str, partial: Path, label: str, progress: bool) -> str:
        """One download attempt; returns the SHA-256 of what it wrote."""
        timeout = httpx.Timeout(self.timeout_s)
        with (
            httpx.Client(follow_redirects=True, timeout=timeout, transport=self._transport) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code == 429 or response.status_code >= 500:
                raise _RetryableStatus(f"HTTP {response.status_code}")
            response.raise_for_status()
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(progress) as bar, partial.open("wb") as handle:
                task = bar.add_task(label, total=total)
                return _copy(response, handle, lambda size: bar.advance(task, size))


def _label(entry: ModelEntry | AdapterEntry) -> str:
    """How messages name an entry: "Model 'x'", "LoRA 'x'" or "Textual inversion 'x'"."""
    if isinstance(entry, ModelEntry):
        return f"Model '{entry.name}'"
    return f"{'LoRA' if entry.kind == 'lora' else 'Textual inversion'} '{entry.name}'"


class _RetryableStatus(Exception):
    """The server answered with a status worth retrying (rate limit or server error)."""


def _progress_bar(enabled: bool) -> Progress:
    """A byte/speed/ETA progress bar on stderr; silent when disabled or when stderr is not a terminal."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and sys.stderr.isatty()),
    )


def _copy(response: httpx.Response, handle: BinaryIO, advance: Callable[[int], None]) -> str:
    """Write the response body to ``handle`` while hashing it, so the file need not be read again."""
    digest = hashlib.sha256()
    for chunk in response.iter_bytes(CHUNK_BYTES):
        handle.write(chunk)
        digest.update(chunk)
        advance(len(chunk))
    return digest.hexdigest()
