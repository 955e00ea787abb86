"""LoRAs and textual inversions on demand: resolved through CivitAI's public API, fetched into an LRU cache.

A job's ``loras[].name`` is a CivitAI model id, a model name (searched), or a version id with
``is_version``; a ``tis[].name`` is a model id or name. As the AI Horde's worker does:

1. ``GET {api}/model-versions/{id}`` (a version id), ``GET {api}/models/{id}`` (a model id: its newest version),
   or ``GET {api}/models?query=…&types=LORA`` (a name: an exact name match first, else the best rated);
2. the version's primary ``.safetensors`` file, which must have a SHA-256 (checked after download), be no
   larger than ``MAX_ADHOC_BYTES``, and suit the job's model: its ``baseModel`` must be the model's baseline
   (a mismatch is reported as ``baseline_mismatch``), and an NSFW adapter needs a worker with ``nsfw: true``;
3. the file is fetched by ``download.fetch`` into ``<store>/civitai/<kind>/`` (the same lock, resume and
   hash checks as models), within a cache cap of its own: the least recently used adapters are deleted
   to make room.

What was resolved is kept in ``<store>/civitai/index.json`` (name → version, file, trigger words, last use),
so a worker that has used an adapter serves it again when CivitAI cannot be reached. An API token
(``civitai_token``) is sent as a bearer token, for gated files.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock

from openhorde.worker.generation.adapters import AdapterFile, AdapterLookup, AdapterUnusable
from openhorde.worker.models.catalogue import Baseline, RemoteFile
from openhorde.worker.models.download import LOCKS_FOLDER, fetch, gib
from openhorde.worker.models.store import ModelStore

logger = logging.getLogger(__name__)

DEFAULT_CIVITAI_API = "https://civitai.com/api/v1"
DEFAULT_CACHE_BYTES = 10 << 30
"""The on-demand adapter cache's cap (reGen's default LoRA cache is 10 GB)."""
MAX_ADHOC_BYTES = 400 << 20
"""The largest on-demand adapter file (reGen refuses ad-hoc LoRAs over 400 MB)."""
API_TIMEOUT_SECONDS = 20.0
CACHE_FOLDER = "civitai"
_TYPES = {"lora": ("LORA", "LoCon"), "ti": ("TextualInversion",)}
_FOLDERS = {"lora": "loras", "ti": "textual_inversions"}
_OTHER_FAMILIES = ("SD 3", "Flux", "Stable Cascade", "SVD", "PixArt", "Hunyuan", "Kolors", "AuraFlow", "Wan", "Qwen")
"""CivitAI ``baseModel`` prefixes of families no SD 1/2/XL model can use."""


def civitai_baseline(base_model: str | None) -> Baseline | None:
    """Our baseline for a CivitAI ``baseModel`` (``SD 1.5`` → sd1, ``SDXL 1.0``/``Pony``/``Illustrious`` → sdxl)."""
    text = (base_model or "").strip()
    if text.startswith("SD 1"):
        return "sd1"
    if text.startswith("SD 2"):
        return "sd2"
    if text.startswith("SDXL") or text in ("Pony", "Illustrious", "NoobAI"):
        return "sdxl"
    return None


def _is_other_family(base_model: str | None) -> bool:
    return (base_model or "").startswith(_OTHER_FAMILIES)


@dataclass(frozen=True)
class Resolved:
    """One adapter version as CivitAI describes it: the file to fetch and what it is for."""

    version_id: int
    name: str
    file_name: str
    url: str
    sha256: str | None
    size_bytes: int | None
    base_model: str | None
    triggers: tuple[str, ...]
    nsfw: bool


class Civitai:
    """Resolves and fetches LoRAs and TIs for jobs (an ``AdapterResolver`` when bound to the model baselines)."""

    def __init__(
        self,
        store: ModelStore,
        *,
        api_url: str = DEFAULT_CIVITAI_API,
        token: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        nsfw: bool = True,
        baselines: Mapping[str, Baseline] | None = None,
    ) -> None:
        self.store = store
        self.api_url = api_url.rstrip("/")
        self.cache_bytes = cache_bytes
        self.nsfw = nsfw
        self.baselines = dict(baselines or {})
        """The baseline of each horde model this worker serves, to check adapters against."""
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.root = store.root / CACHE_FOLDER

    def __call__(self, lookup: AdapterLookup) -> AdapterFile:
        """The adapter's file (fetched if need be); raises ``AdapterUnusable`` or another error when there is none."""
        key = _key(lookup)
        try:
            resolved = self.resolve(lookup)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            cached = self._cached(lookup.kind, key)
            if cached is None:
                raise AdapterUnusable("download_failed", f"CivitAI lookup of '{lookup.name}' failed: {exc}") from exc
            logger.warning("CivitAI unreachable (%s); using the cached %s '%s'", exc, lookup.kind, lookup.name)
            return cached
        self._check(lookup, resolved)
        relative = f"{CACHE_FOLDER}/{_FOLDERS[lookup.kind]}/{resolved.version_id}-{_safe(resolved.file_name)}"
        path = self.store.path_for(relative)
        if not path.exists():
            self._make_room(lookup.kind, resolved.size_bytes or 0)
        file = RemoteFile(relative, resolved.url, resolved.sha256, size=resolved.size_bytes)
        fetched = fetch(file, self.store, progress=False, label=f"{lookup.kind} {resolved.name}", headers=self._headers)
        self._remember(lookup.kind, key, relative, resolved)
        return AdapterFile(fetched, resolved.triggers)

    # -- the API --------------------------------------------------------------------------------------------

    def resolve(self, lookup: AdapterLookup) -> Resolved:
        """The version a job's LoRA/TI name means, from CivitAI's API."""
        name = lookup.name.strip()
        with httpx.Client(timeout=API_TIMEOUT_SECONDS, headers=self._headers, transport=self.store.transport) as client:
            if name.isdigit() and lookup.is_version:
                version = _json(client.get(f"{self.api_url}/model-versions/{name}"))
                model = version.get("model") or {}
                return _resolved(version, str(model.get("name") or name), bool(model.get("nsfw")))
            if name.isdigit():
                model = _json(client.get(f"{self.api_url}/models/{name}"))
            else:
                params = {
                    "query": name,
                    "types": _TYPES[lookup.kind],
                    "sort": "Highest Rated",
                    "primaryFileOnly": "true",
                }
                items = _json(client.get(f"{self.api_url}/models", params=params)).get("items") or []
                exact = [item for item in items if str(item.get("name", "")).casefold() == name.casefold()]
                if not items:
                    raise KeyError(f"no {lookup.kind} called '{name}' on CivitAI")
                model = (exact or items)[0]
        if model.get("type") not in _TYPES[lookup.kind]:
            raise AdapterUnusable(
                "download_failed", f"CivitAI model {name} is a {model.get('type')}, not a {lookup.kind}"
            )
        versions = model.get("modelVersions") or []
        if not versions:
            raise KeyError(f"CivitAI model {name} has no versions")
        return _resolved(versions[0], str(model.get("name") or name), bool(model.get("nsfw")))

    def _check(self, lookup: AdapterLookup, resolved: Resolved) -> None:
        """Refuse an adapter that does not suit the job: no hash, too large, another baseline, NSFW on an SFW worker."""
        if resolved.sha256 is None:
            raise AdapterUnusable("download_failed", f"'{resolved.name}' has no SHA-256 on CivitAI to check it by")
        if resolved.size_bytes is not None and resolved.size_bytes > MAX_ADHOC_BYTES:
            raise AdapterUnusable("download_failed", f"'{resolved.name}' is {gib(resolved.size_bytes)}, over the limit")
        if resolved.nsfw and not self.nsfw:
            raise AdapterUnusable("download_failed", f"'{resolved.name}' is NSFW and this worker has nsfw: false")
        model_baseline = self.baselines.get(lookup.model)
        adapter_baseline = civitai_baseline(resolved.base_model)
        mismatch = (
            adapter_baseline is not None and model_baseline is not None and adapter_baseline != model_baseline
        ) or (adapter_baseline is None and _is_other_family(resolved.base_model))
        if mismatch:
            raise AdapterUnusable(
                "baseline_mismatch",
                f"'{resolved.name}' is for {resolved.base_model}, the model {lookup.model} is {model_baseline}",
            )

    # -- the cache ------------------------------------------------------------------------------------------

    def _index_path(self) -> Path:
        return self.root / "index.json"

    def _read_index(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            index = json.loads(self._index_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"lora": {}, "ti": {}}
        return {kind: dict(index.get(kind) or {}) for kind in ("lora", "ti")}

    def _update_index(self, change: Any) -> None:
        """Read, change and write the index under a lock (workers sharing the store share it)."""
        (self.store.root / LOCKS_FOLDER).mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.store.root / LOCKS_FOLDER / "civitai-index.lock")):
            index = self._read_index()
            change(index)
            self.root.mkdir(parents=True, exist_ok=True)
            partial = self._index_path().with_name("index.json.partial")
            partial.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
            partial.replace(self._index_path())

    def _remember(self, kind: str, key: str, relative: str, resolved: Resolved) -> None:
        record = {
            "path": relative,
            "version": resolved.version_id,
            "triggers": list(resolved.triggers),
            "used_at": time.time(),
        }
        self._update_index(lambda index: index[kind].__setitem__(key, record))

    def _cached(self, kind: str, key: str) -> AdapterFile | None:
        record = self._read_index()[kind].get(key)
        if record is None or not self.store.path_for(record["path"]).is_file():
            return None
        self._update_index(lambda index: index[kind][key].__setitem__("used_at", time.time()))
        return AdapterFile(self.store.path_for(record["path"]), tuple(record.get("triggers") or ()))

    def _make_room(self, kind: str, size: int) -> None:
        """Delete the least recently used cached adapters of every kind until ``size`` more bytes fit the cap."""
        used_at: dict[Path, float] = {}
        for records in self._read_index().values():
            for record in records.values():
                used_at[self.store.path_for(record["path"])] = float(record.get("used_at") or 0)
        files = [path for folder in _FOLDERS.values() for path in (self.root / folder).glob("*") if path.is_file()]
        files = [path for path in files if not path.name.endswith((".sha256", ".partial"))]
        total = sum(path.stat().st_size for path in files)
        for path in sorted(files, key=lambda item: used_at.get(item, item.stat().st_mtime)):
            if total + size <= self.cache_bytes:
                break
            total -= path.stat().st_size
            logger.info("Adapter cache full: deleting %s", path.name)
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)


def _key(lookup: AdapterLookup) -> str:
    return f"version:{lookup.name}" if lookup.is_version else lookup.name.strip().casefold()


def _safe(name: str) -> str:
    """A file name safe on every system, at most 128 characters (as reGen shortens them)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-128:] or "adapter.safetensors"


def _json(response: httpx.Response) -> dict[str, Any]:
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"CivitAI answered {type(body).__name__}, not an object")
    return body


def _resolved(version: Mapping[str, Any], model_name: str, nsfw: bool) -> Resolved:
    """The primary ``.safetensors`` file of a version (the first one when none is marked primary)."""
    files = [file for file in version.get("files") or [] if str(file.get("name", "")).endswith(".safetensors")]
    if not files:
        raise KeyError(f"CivitAI version {version.get('id')} has no .safetensors file")
    file = next((item for item in files if item.get("primary")), files[0])
    size_kb = file.get("sizeKB")
    sha256 = (file.get("hashes") or {}).get("SHA256")
    return Resolved(
        version_id=int(version["id"]),
        name=model_name,
        file_name=str(file["name"]),
        url=str(file.get("downloadUrl") or version.get("downloadUrl")),
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        size_bytes=int(size_kb * 1024) if isinstance(size_kb, int | float) else None,
        base_model=version.get("baseModel"),
        triggers=tuple(str(word) for word in version.get("trainedWords") or ()),
        nsfw=nsfw,
    )
