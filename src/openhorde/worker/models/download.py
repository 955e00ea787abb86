"""Fetching one file into the model store: ``fetch(file, store) -> Path``, the one download path of the worker.

Checkpoints, their config files, LoRAs, textual inversions and post-processor weights all come through
``fetch``, which:

1. returns a file that is already there once its SHA-256 (or, when that is all the source gives, MD5)
   matches; a mismatch on a file the owner put there is an error, never a silent re-download;
2. takes ``<file>.lock`` (an OS file lock), so two workers sharing one model store download a file once:
   the second waits, then finds the file and only checks it;
3. checks the disk before writing: the store's budget (``disk_budget_gb``) and the free space, so a worker
   refuses with a clear message rather than filling the disk;
4. streams into ``<file>.partial`` while hashing, resuming a cut-off download with an HTTP ``Range`` request
   (after a network error, and on the next start after a crash), retrying network errors, 429 and 5xx with
   a doubling delay;
5. checks the digest, then renames the partial file into place; a wrong digest discards the download.

Progress shows as a rich bar on a terminal and as ``download_progress`` events in the log (JSON lines
for log collectors).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from filelock import FileLock, Timeout
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from openhorde.worker.logs import log_event
from openhorde.worker.models.catalogue import RemoteFile
from openhorde.worker.models.hashes import Algorithm, file_digest, new_digest, record_digests

if TYPE_CHECKING:
    from openhorde.worker.models.store import ModelStore

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3
"""Tries without progress before a download gives up (network errors and 5xx/429 answers only)."""
CHUNK_BYTES = 1 << 20
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
LOCKS_FOLDER = ".locks"
PROGRESS_EVENT_SECONDS = 5.0
"""The longest time between two ``download_progress`` log events (one is also logged at every tenth)."""
GIB = 1 << 30


class ModelUnavailable(RuntimeError):
    """The model's files are not on this machine and cannot be fetched."""


class DownloadFailed(ModelUnavailable):
    """A download failed after all its attempts, or the server refused it."""


class DiskBudgetExceeded(ModelUnavailable):
    """The files would not fit: the model store's budget or the disk's free space is too small."""


class ChecksumMismatch(RuntimeError):
    """A file's digest is not the one its source publishes."""

    def __init__(
        self, path: Path, expected: str, actual: str, *, deleted: bool = False, algorithm: Algorithm = "sha256"
    ) -> None:
        self.path, self.expected, self.actual, self.algorithm = path, expected, actual, algorithm
        advice = "the download was discarded" if deleted else "delete or replace the file"
        name = "SHA-256" if algorithm == "sha256" else "MD5"
        super().__init__(f"{path}: {name} is {actual}, but {expected} was expected ({advice}).")


def expected_digest(file: RemoteFile) -> tuple[Algorithm, str] | None:
    """The digest to check a file against: its SHA-256 when known, else its MD5, else none."""
    if file.sha256:
        return "sha256", file.sha256.lower()
    if file.md5:
        return "md5", file.md5.lower()
    return None


def gib(size: int) -> str:
    """Bytes as GiB for messages (``1.5 GiB``)."""
    return f"{size / GIB:.1f} GiB" if size >= GIB // 10 else f"{size / (1 << 20):.1f} MiB"


def store_usage(root: Path) -> int:
    """Bytes of every file under the model store's root (partial downloads included: they hold disk too)."""
    if not root.is_dir():
        return 0
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += (Path(folder) / name).stat().st_size
            except OSError:  # removed meanwhile
                continue
    return total


def check_room(store: ModelStore, needed: int, what: str) -> None:
    """Raise ``DiskBudgetExceeded`` unless ``needed`` more bytes fit the store's budget and the disk's free space."""
    if needed <= 0:
        return
    if store.budget_bytes is not None:
        used = store_usage(store.root)
        if used + needed > store.budget_bytes:
            raise DiskBudgetExceeded(
                f"{what} needs {gib(needed)} more, but the model store {store.root} holds {gib(used)} of its "
                f"{gib(store.budget_bytes)} budget (disk_budget_gb); raise the budget or serve fewer models."
            )
    existing = store.root if store.root.exists() else _existing_parent(store.root)
    free = shutil.disk_usage(existing).free
    if needed > free - store.reserve_bytes:
        raise DiskBudgetExceeded(
            f"{what} needs {gib(needed)}, but the disk of {store.root} has {gib(free)} free and "
            f"{gib(store.reserve_bytes)} is kept in reserve; free some space or serve fewer models."
        )


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def fetch(
    file: RemoteFile,
    store: ModelStore,
    *,
    progress: bool = True,
    label: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Path:
    """The file on disk under the store, checked against its digest; downloaded (or resumed) first when missing.

    ``headers`` go with the download's requests (e.g. an API token for gated files; httpx drops
    ``Authorization`` on a redirect to another host).
    """
    path = store.path_for(file.path)
    if path.is_file():
        return _verified(path, file)
    if file.url is None:
        raise ModelUnavailable(f"{path} does not exist and the catalogue gives no download URL for it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(store, path, label or path.name):
        if path.is_file():  # another worker sharing the store fetched it while we waited
            return _verified(path, file)
        _download(file, file.url, path, store, progress, label or path.name, dict(headers or {}))
    return path


def _verified(path: Path, file: RemoteFile) -> Path:
    expected = expected_digest(file)
    if expected is not None:
        algorithm, digest = expected
        actual = file_digest(path, algorithm)
        if actual != digest:
            raise ChecksumMismatch(path, digest, actual, algorithm=algorithm)
    return path


def lock_path(store: ModelStore, path: Path) -> Path:
    """The lock file guarding downloads of ``path``: in the store's ``.locks`` folder, named by the path.

    Lock files stay (deleting one that another process has open would let a third lock a new file of the
    same name), so they live apart from the model files.
    """
    digest = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    return store.root / LOCKS_FOLDER / f"{path.name}.{digest}{LOCK_SUFFIX}"


@contextmanager
def _locked(store: ModelStore, path: Path, label: str) -> Iterator[None]:
    """Hold the file's lock, saying so when another process (or thread) holds it first."""
    where = lock_path(store, path)
    where.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(where))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log_event(logger, logging.INFO, "download_waiting", f"Waiting for another download of {label}", file=label)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _download(
    file: RemoteFile, url: str, path: Path, store: ModelStore, progress: bool, label: str, headers: dict[str, str]
) -> None:
    """Fetch ``url`` into ``path``: stream to (or resume) a partial file, check the digest, rename."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    # Before any byte is written: a size known beforehand (the model reference's) is checked here, the
    # server's Content-Length again once it answers.
    if file.size is not None:
        check_room(store, file.size - (partial.stat().st_size if partial.exists() else 0), label)
    expected = expected_digest(file)
    algorithm: Algorithm = expected[0] if expected else "sha256"
    started = time.perf_counter()
    failures = 0
    while True:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            actual = _stream(url, partial, store, algorithm, progress, label, headers)
            break
        except (httpx.TransportError, _RetryableStatus) as exc:
            # The partial file is kept: the next attempt asks only for what is missing.
            failures = 0 if (partial.stat().st_size if partial.exists() else 0) > before else failures + 1
            if failures >= DOWNLOAD_ATTEMPTS:
                raise DownloadFailed(f"Downloading {url} failed {failures} times; last error: {exc}") from exc
            delay = store.retry_delay_s * 2 ** max(failures - 1, 0)
            log_event(
                logger, logging.WARNING, "download_retry", f"Download of {label} failed ({exc}); retrying", file=label
            )
            time.sleep(delay)
        except httpx.HTTPStatusError as exc:
            partial.unlink(missing_ok=True)
            raise DownloadFailed(f"Downloading {url} failed: HTTP {exc.response.status_code}") from exc
    if expected is not None and actual != expected[1]:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(path, expected[1], actual, deleted=True, algorithm=algorithm)
    os.replace(partial, path)
    record_digests(path, {algorithm: actual})
    size = path.stat().st_size
    log_event(
        logger,
        logging.INFO,
        "download_done",
        f"Downloaded {label} ({gib(size)}) in {time.perf_counter() - started:.1f} s",
        file=label,
        bytes=size,
    )


def _stream(
    url: str, partial: Path, store: ModelStore, algorithm: Algorithm, progress: bool, label: str, extra: dict[str, str]
) -> str:
    """One attempt: resume ``partial`` from its end (or start afresh); returns the digest of the whole file."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {**extra, "Range": f"bytes={offset}-"} if offset else extra
    with (
        httpx.Client(
            follow_redirects=True, timeout=httpx.Timeout(store.timeout_s), transport=store.transport
        ) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code == 416 and offset:  # the partial file is no prefix the server knows: start over
            partial.unlink()
            raise _RetryableStatus("HTTP 416 for the partial file's range; starting over")
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableStatus(f"HTTP {response.status_code}")
        response.raise_for_status()
        if offset and not _resumes_at(response, offset):
            offset = 0  # the server sent the whole file (it ignores Range): write it from the start
        length = response.headers.get("content-length")
        total = offset + int(length) if length and length.isdigit() else None
        if total is not None:
            check_room(store, total - offset, label)
        digest = new_digest(algorithm)
        if offset:
            log_event(logger, logging.INFO, "download_resumed", f"Resuming {label} at {gib(offset)}", file=label)
            _hash_prefix(partial, digest)
        with _progress_bar(progress) as bar, partial.open("ab" if offset else "wb") as handle:
            task = bar.add_task(label, total=total, completed=offset)
            reporter = _ProgressEvents(label, total, offset)
            for chunk in response.iter_bytes(CHUNK_BYTES):
                handle.write(chunk)
                digest.update(chunk)
                bar.advance(task, len(chunk))
                reporter.advance(len(chunk))
        return digest.hexdigest()


def _resumes_at(response: httpx.Response, offset: int) -> bool:
    """Whether the answer is the rest of the file from ``offset`` (a 206 whose Content-Range starts there)."""
    if response.status_code != 206:
        return False
    content_range = response.headers.get("content-range", "")
    return content_range.startswith(f"bytes {offset}-")


def _hash_prefix(partial: Path, digest: hashlib._Hash) -> None:
    with partial.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES * 8):
            digest.update(chunk)


class _ProgressEvents:
    """``download_progress`` log events: at every tenth of the file, and at least every few seconds."""

    def __init__(self, label: str, total: int | None, done: int) -> None:
        self.label, self.total, self.done = label, total, done
        self._last_time = time.monotonic()
        self._last_tenth = self._tenth()

    def _tenth(self) -> int:
        return self.done * 10 // self.total if self.total else 0

    def advance(self, size: int) -> None:
        self.done += size
        now = time.monotonic()
        tenth = self._tenth()
        if tenth == self._last_tenth and now - self._last_time < PROGRESS_EVENT_SECONDS:
            return
        self._last_time, self._last_tenth = now, tenth
        percent = round(100 * self.done / self.total, 1) if self.total else None
        shown = f"{percent}%" if percent is not None else gib(self.done)
        log_event(
            logger,
            logging.INFO,
            "download_progress",
            f"Downloading {self.label}: {shown}",
            file=self.label,
            bytes=self.done,
            total=self.total,
            percent=percent,
        )


class _RetryableStatus(Exception):
    """The server answered with a status worth retrying (rate limit or server error)."""


def _progress_bar(enabled: bool) -> Progress:
    """A byte/speed/ETA progress bar on stderr; silent when disabled or when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not (enabled and sys.stderr.isatty()),
    )
