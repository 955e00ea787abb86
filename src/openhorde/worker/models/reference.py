"""The worker's side of the AI Horde model reference: fetched (or read), cached in the model store, made entries.

``model_reference`` is a URL (by default the public file) or a local path. A URL is fetched on start-up
when some model is not in the local catalogue; each good copy is kept in ``<store>/.reference/`` with the
time it was fetched, and used, with a warning naming that time, when the network or the server is down.
Each reference record whose baseline and files this worker can load becomes a catalogue ``ModelEntry``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import httpx

from openhorde.model_reference import ReferenceError, ReferenceModel, loads
from openhorde.worker.logs import log_event
from openhorde.worker.models.catalogue import (
    BASELINE_ALIASES,
    CHECKPOINT_SUFFIXES,
    ModelEntry,
    RemoteFile,
)
from openhorde.worker.models.download import ModelUnavailable
from openhorde.worker.models.store import ModelStore

logger = logging.getLogger(__name__)

CACHE_FOLDER = ".reference"
REFERENCE_TIMEOUT_SECONDS = 20.0
"""The longest wait for the reference's server before the cached copy is used."""
CONFIG_INDEX = "model_index.json"


class ReferenceUnavailable(ModelUnavailable):
    """The model reference can be neither fetched nor read from the cache."""


@dataclass(frozen=True)
class Reference:
    """A model reference as read: its records, where from, and when that copy was fetched (UTC)."""

    models: Mapping[str, ReferenceModel]
    source: str
    fetched_at: datetime
    from_cache: bool = False

    def entries(self) -> dict[str, ModelEntry]:
        """The records this worker can load, as catalogue entries (by name)."""
        entries = {}
        for name, record in self.models.items():
            entry = to_entry(record)
            if entry is not None:
                entries[name] = entry
        return entries

    def why_unusable(self, name: str) -> str | None:
        """Why the record ``name`` cannot be served here (None when it can, or when there is no such record)."""
        record = self.models.get(name)
        if record is None or to_entry(record) is not None:
            return None
        if record.baseline.strip().lower() not in BASELINE_ALIASES:
            return f"'{name}' is a {record.baseline} model, which this worker cannot load (SD 1, SD 2 and SDXL only)"
        return f"'{name}' has no downloadable checkpoint file in the model reference"


def is_url(location: str) -> bool:
    """Whether ``model_reference`` is a URL (else a local path)."""
    return urlparse(location).scheme in ("http", "https")


def cache_path(store: ModelStore, url: str) -> Path:
    """Where the copy of the reference at ``url`` is kept: named by the URL's file name and a short hash."""
    name = PurePosixPath(urlparse(url).path).name or "reference.json"
    return store.root / CACHE_FOLDER / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def load_reference(location: str, store: ModelStore) -> Reference:
    """The reference at ``location`` (URL or path); a URL falls back on the cached copy when it cannot be fetched."""
    if not is_url(location):
        path = Path(location).expanduser()
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ReferenceUnavailable(f"model_reference {path}: cannot read it ({exc.strerror or exc}).") from exc
        fetched = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return Reference(_parse(text, str(path)), str(path), fetched)
    cached = cache_path(store, location)
    try:
        text = _fetch(location, store)
        models = _parse(text, location)
    except (ReferenceUnavailable, ReferenceError) as exc:
        return _from_cache(cached, location, str(exc))
    fetched = datetime.now(UTC)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(cached.name + ".partial")
    partial.write_bytes(text)
    partial.replace(cached)
    _meta(cached).write_text(json.dumps({"url": location, "fetched_at": fetched.isoformat()}) + "\n")
    return Reference(models, location, fetched)


def _parse(text: bytes, source: str) -> dict[str, ReferenceModel]:
    try:
        return loads(text, source)
    except ReferenceError as exc:
        raise ReferenceUnavailable(str(exc)) from exc


def _fetch(url: str, store: ModelStore) -> bytes:
    try:
        with httpx.Client(
            follow_redirects=True, timeout=REFERENCE_TIMEOUT_SECONDS, transport=store.transport
        ) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise ReferenceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise ReferenceUnavailable(f"{url}: HTTP {response.status_code}")
    return response.content


def _meta(cached: Path) -> Path:
    return cached.with_name(cached.name + ".meta")


def _from_cache(cached: Path, url: str, problem: str) -> Reference:
    """The cached copy of the reference at ``url``, with a warning saying how old it is."""
    if not cached.is_file():
        raise ReferenceUnavailable(
            f"The model reference {url} cannot be fetched ({problem}) and no copy of it is cached in "
            f"{cached.parent}; connect once, or set model_reference to a local file."
        )
    try:
        meta = json.loads(_meta(cached).read_text(encoding="utf-8"))
        fetched = datetime.fromisoformat(meta["fetched_at"])
    except (OSError, ValueError, KeyError, TypeError):
        fetched = datetime.fromtimestamp(cached.stat().st_mtime, UTC)
    models = _parse(cached.read_bytes(), str(cached))
    log_event(
        logger,
        logging.WARNING,
        "reference_cached",
        f"Using the model reference cached on {fetched:%Y-%m-%d %H:%M} UTC: {problem}",
        url=url,
        fetched_at=fetched.isoformat(),
    )
    return Reference(models, url, fetched, from_cache=True)


def to_entry(record: ReferenceModel) -> ModelEntry | None:
    """The catalogue entry for a reference record, or None when this worker cannot load it.

    The first downloadable checkpoint is the model; the other downloadable files come with it. One of
    them named ``model_index.json`` makes its folder the diffusers config the checkpoint is loaded with
    (instead of the one shipped for the baseline), so a reference can carry models of any UNet layout.
    """
    baseline = BASELINE_ALIASES.get(record.baseline.strip().lower())
    if baseline is None:
        return None
    checkpoint = next(
        (file for file in record.files if file.url and file.path.lower().endswith(CHECKPOINT_SUFFIXES)), None
    )
    if checkpoint is None:
        return None
    extras = tuple(
        RemoteFile(file.path, file.url, file.sha256, file.md5)
        for file in record.files
        if file.url and file is not checkpoint
    )
    config = next(
        (str(PurePosixPath(file.path).parent) for file in extras if PurePosixPath(file.path).name == CONFIG_INDEX),
        None,
    )
    return ModelEntry(
        name=record.name,
        baseline=baseline,
        inpainting=record.inpainting,
        nsfw=record.nsfw,
        file=checkpoint.path,
        sha256=checkpoint.sha256,
        md5=checkpoint.md5,
        url=checkpoint.url,
        config=config,
        triggers=record.triggers,
        description=record.description,
        source="reference",
        size_bytes=record.size_on_disk_bytes,
        features_not_supported=record.features_not_supported,
        extra_files=extras,
    )
