"""The model store: the folder where checkpoints, LoRAs and textual inversions live, and how files get there.

A file that is missing is fetched by ``download.fetch`` (locked, resumable, checked, within the disk
budget). A file that is present is checked against its digest once; the result is kept in a sidecar
(``hashes.py``), so multi-gigabyte checkpoints are not hashed again on every start.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from openhorde.worker.models.catalogue import HYPERNETWORK_FOLDER, AdapterEntry, ModelEntry, RemoteFile
from openhorde.worker.models.download import (
    GIB,
    ChecksumMismatch,
    DiskBudgetExceeded,
    DownloadFailed,
    ModelUnavailable,
    check_room,
    fetch,
)
from openhorde.worker.models.hashes import file_sha256

__all__ = [
    "ChecksumMismatch",
    "DiskBudgetExceeded",
    "DownloadFailed",
    "ModelStore",
    "ModelUnavailable",
    "file_sha256",
]

DEFAULT_RETRY_DELAY_SECONDS = 2.0
"""The wait before the second attempt; it doubles for each further attempt."""
DEFAULT_TIMEOUT_SECONDS = 60.0
"""The longest silence tolerated from the server while connecting or between two chunks."""
DEFAULT_RESERVE_BYTES = GIB
"""Free disk space a download always leaves, so a full store does not stop the rest of the machine."""


class ModelStore:
    """The folder the worker keeps model files in; relative catalogue paths are relative to it."""

    def __init__(
        self,
        root: Path,
        *,
        retry_delay_s: float = DEFAULT_RETRY_DELAY_SECONDS,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        budget_bytes: int | None = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        self.root = root.expanduser()
        self.retry_delay_s = retry_delay_s
        self.timeout_s = timeout_s
        self.transport = transport
        self.budget_bytes = budget_bytes
        """The most bytes the store's files may take (``disk_budget_gb``); None: only the disk's free space."""
        self.reserve_bytes = reserve_bytes

    def resolve(self, entry: ModelEntry | AdapterEntry) -> Path:
        """Where the entry's file or folder lives (whether or not it is there yet)."""
        if entry.file is None:
            raise ModelUnavailable(f"{_label(entry)} has no file in the catalogue.")
        return self.path_for(entry.file)

    def path_for(self, file: str) -> Path:
        """An absolute path for a catalogue ``file``: as given if absolute, else under the store's root."""
        path = Path(file).expanduser()
        return path if path.is_absolute() else self.root / path

    def hypernetwork_file(self, name: str) -> Path | None:
        """``hypernetworks/<name>.pt`` of the store when it is there (a plain name only: no folders, no dot first)."""
        if not name or Path(name).name != name or name.startswith("."):
            return None
        path = self.root / HYPERNETWORK_FOLDER / f"{name}.pt"
        return path if path.is_file() else None

    def missing_bytes(self, entries: list[ModelEntry]) -> int:
        """Bytes still to download for these models' files (by the sizes their sources state)."""
        total = 0
        for entry in entries:
            for file in entry.files():
                path = self.path_for(file.path)
                if file.url is not None and file.size is not None and not path.exists():
                    partial = path.with_name(path.name + ".partial")
                    total += file.size - (partial.stat().st_size if partial.exists() else 0)
        return total

    def check_room(self, entries: list[ModelEntry]) -> None:
        """Raise ``DiskBudgetExceeded`` when the missing files of ``entries`` would not fit (checked at start-up)."""
        names = ", ".join(entry.name for entry in entries if entry.files())
        check_room(self, self.missing_bytes(entries), f"Downloading {names}")

    def ensure(self, entry: ModelEntry | AdapterEntry, progress: bool = True) -> Path:
        """The entry's file or folder, downloaded and verified if need be."""
        path = self.resolve(entry)
        label = _label(entry)
        if isinstance(entry, ModelEntry) and not entry.is_single_file:
            if path.is_dir():
                return path
            raise ModelUnavailable(f"{label}: the diffusers folder {path} does not exist.")
        files = entry.files() if isinstance(entry, ModelEntry) else [RemoteFile(entry.file, entry.url, entry.sha256)]
        try:
            for file in files:
                fetched = fetch(file, self, progress=progress)
        except ModelUnavailable as exc:
            raise type(exc)(f"{label}: {exc}") from exc
        return fetched

    def ensure_file(self, path: Path, url: str | None, sha256: str | None, progress: bool = True) -> Path:
        """``path``, checked against ``sha256``; downloaded from ``url`` first when it is missing."""
        return fetch(RemoteFile(str(path), url, sha256), self, progress=progress)


def _label(entry: ModelEntry | AdapterEntry) -> str:
    """How messages name an entry: "Model 'x'", "LoRA 'x'" or "Textual inversion 'x'"."""
    if isinstance(entry, ModelEntry):
        return f"Model '{entry.name}'"
    kinds = {"lora": "LoRA", "ti": "Textual inversion", "hypernetwork": "Hypernetwork"}
    return f"{kinds[entry.kind]} '{entry.name}'"
