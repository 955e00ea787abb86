"""The worker's model catalogue: which models, LoRAs, textual inversions and hypernetworks it can serve, and where from.

The catalogue is a YAML (or JSON) file the worker's owner writes::

    models:
      - name: Deliberate                      # the horde model name
        baseline: stable diffusion 1          # sd1 | sd2 | sdxl, or the AI Horde baseline names
        file: deliberate_v2.safetensors       # relative to the model store, or absolute
        url: https://huggingface.co/…/deliberate_v2.safetensors
        sha256: 9aba26abdf…
    loras:
      - name: add_detail
        file: loras/add_detail.safetensors
        url: https://…
    textual_inversions:
      - name: easynegative
        file: ti/easynegative.safetensors
    hypernetworks:                            # AUTOMATIC1111 .pt files (an OpenHorde extension)
      - name: anime
        url: https://…/anime.pt               # file defaults to hypernetworks/<name>.pt
        sha256: 3f1c…

The built-in ``openhorde-tiny`` model is always in it. Parsing is strict: an unknown key or a bad
value is an error that names the file and the entry, because a typo silently ignored would only
show up later as a model that never loads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast
from urllib.parse import urlparse

import yaml

Baseline = Literal["sd1", "sd2", "sdxl"]
AdapterKind = Literal["lora", "ti", "hypernetwork"]
ModelSource = Literal["builtin", "catalogue", "reference"]
HYPERNETWORK_FOLDER = "hypernetworks"
"""Where in the model store hypernetworks live: a ``<name>.pt`` there is served without a catalogue entry."""

BASELINE_ALIASES: dict[str, Baseline] = {
    "sd1": "sd1",
    "stable diffusion 1": "sd1",
    "stable_diffusion_1": "sd1",
    "sd2": "sd2",
    "stable diffusion 2": "sd2",
    "stable_diffusion_2_768": "sd2",
    "stable diffusion 2 512": "sd2",
    "sdxl": "sdxl",
    "stable_diffusion_xl": "sdxl",
}
"""Our baseline names and the AI Horde ones (legacy and model-reference spellings) they stand for."""

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
"""A ``file`` with one of these suffixes is a single-file checkpoint; anything else is a diffusers folder."""

_MODEL_KEYS = frozenset(
    {"name", "baseline", "inpainting", "nsfw", "file", "sha256", "url", "hub_id", "config", "triggers", "description"}
)
_ADAPTER_KEYS = frozenset({"name", "file", "sha256", "url", "triggers", "baseline", "description"})
_SECTIONS = {"models": None, "loras": "lora", "textual_inversions": "ti", "hypernetworks": "hypernetwork"}
_ADAPTER_FOLDERS: dict[AdapterKind, str] = {
    "lora": "loras",
    "ti": "textual_inversions",
    "hypernetwork": HYPERNETWORK_FOLDER,
}
_ADAPTER_SUFFIXES: dict[AdapterKind, str] = {"lora": ".safetensors", "ti": ".safetensors", "hypernetwork": ".pt"}

TINY_MODEL_NAME = "openhorde-tiny"
"""The same name as ``tiny.TINY_MODEL_NAME``, repeated so that reading a catalogue does not import torch."""


class CatalogueError(ValueError):
    """The catalogue file is unreadable or one of its entries is invalid."""


class UnknownModel(KeyError):
    """The worker's catalogue has no model of this name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "Unknown model."


@dataclass(frozen=True)
class RemoteFile:
    """One file of the model store and where it comes from: what ``download.fetch`` takes.

    ``path`` is relative to the store (or absolute); ``sha256`` (or, when that is all a source gives, ``md5``)
    is checked before the file is used; ``size`` (bytes), when known beforehand, lets a disk budget be checked
    before anything is downloaded.
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One model the worker can load: where its weights are and what kind of model it is."""

    name: str
    baseline: Baseline
    inpainting: bool = False
    nsfw: bool = False
    file: str | None = None
    sha256: str | None = None
    url: str | None = None
    hub_id: str | None = None
    config: str | None = None
    triggers: tuple[str, ...] = ()
    description: str = ""
    source: ModelSource = "catalogue"
    md5: str | None = None
    """The checkpoint's MD5, checked only when there is no ``sha256`` (older model reference entries)."""
    size_bytes: int | None = None
    """The download's size as the model reference states it, for disk budgets before downloading."""
    features_not_supported: tuple[str, ...] = ()
    """Model reference features (``hires_fix``, ``loras``, ``inpainting``, ``controlnet``) this model lacks."""
    extra_files: tuple[RemoteFile, ...] = ()
    """Files fetched with the checkpoint (e.g. the diffusers config a reference entry ships with it)."""

    @property
    def is_single_file(self) -> bool:
        """Whether ``file`` is one checkpoint file (rather than a diffusers folder)."""
        return self.file is not None and self.file.lower().endswith(CHECKPOINT_SUFFIXES)

    def supports(self, feature: str) -> bool:
        """Whether the model reference lists no lack of ``feature`` (``hires_fix``, ``loras``…) for this model."""
        return feature not in self.features_not_supported

    def files(self) -> list[RemoteFile]:
        """Every file the model needs from the store, the checkpoint last (empty for a folder or hub model)."""
        if not self.is_single_file or self.file is None:
            return []
        main = RemoteFile(self.file, self.url, self.sha256, self.md5, self.size_bytes)
        return [*self.extra_files, main]


@dataclass(frozen=True)
class AdapterEntry:
    """One LoRA (``kind="lora"``), textual inversion (``kind="ti"``) or hypernetwork (``kind="hypernetwork"``)."""

    name: str
    kind: AdapterKind
    file: str
    sha256: str | None = None
    url: str | None = None
    triggers: tuple[str, ...] = ()
    baseline: Baseline | None = None
    description: str = ""


TINY_ENTRY = ModelEntry(
    name=TINY_MODEL_NAME,
    baseline="sd1",
    description="Built-in tiny model with random weights, for tests and demos.",
    source="builtin",
)
"""The model every worker can serve without any file: its weights are built in code."""


@dataclass(frozen=True)
class Catalogue:
    """The models, LoRAs and textual inversions a worker knows, by name."""

    models: Mapping[str, ModelEntry] = field(default_factory=lambda: {TINY_ENTRY.name: TINY_ENTRY})
    loras: Mapping[str, AdapterEntry] = field(default_factory=dict)
    textual_inversions: Mapping[str, AdapterEntry] = field(default_factory=dict)
    path: Path | None = None
    hypernetworks: Mapping[str, AdapterEntry] = field(default_factory=dict)

    def model(self, name: str) -> ModelEntry:
        """The model called ``name``; raises ``UnknownModel`` naming the models there are."""
        try:
            return self.models[name]
        except KeyError:
            where = f" ({self.path})" if self.path else ""
            raise UnknownModel(
                f"Model '{name}' is not in the worker's catalogue{where}; known: {', '.join(sorted(self.models))}."
            ) from None

    def lora(self, name: str) -> AdapterEntry | None:
        """The catalogued LoRA called ``name``, or None (a job may name LoRAs the catalogue does not list)."""
        return self.loras.get(name)

    def ti(self, name: str) -> AdapterEntry | None:
        """The catalogued textual inversion called ``name``, or None."""
        return self.textual_inversions.get(name)

    def hypernetwork(self, name: str) -> AdapterEntry | None:
        """The catalogued hypernetwork called ``name``, or None."""
        return self.hypernetworks.get(name)

    def adapter(self, kind: AdapterKind, name: str) -> AdapterEntry | None:
        """The catalogued LoRA, TI or hypernetwork called ``name``, or None."""
        return {"lora": self.loras, "ti": self.textual_inversions, "hypernetwork": self.hypernetworks}[kind].get(name)

    def model_names(self) -> list[str]:
        """The names of all models, sorted."""
        return sorted(self.models)

    def over(self, reference: Mapping[str, ModelEntry]) -> Catalogue:
        """This catalogue on top of model reference entries: a local entry wins over the reference's of its name."""
        return replace(self, models={**reference, **self.models})


def normalise_baseline(value: str) -> Baseline:
    """Our baseline name for ``value`` (``sd1``, ``sd2``, ``sdxl`` or an AI Horde alias); ValueError otherwise."""
    try:
        return BASELINE_ALIASES[value.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown baseline '{value}'; use one of {', '.join(BASELINE_ALIASES)}") from None


def load_catalogue(path: Path | None) -> Catalogue:
    """Read the catalogue file at ``path`` (YAML, or JSON for ``.json``); None gives only the built-in model."""
    if path is None:
        return Catalogue()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc}") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CatalogueError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}"
        ) from exc
    return parse_catalogue(raw, source=str(path), path=path)


def parse_catalogue(raw: Any, source: str = "<catalogue>", path: Path | None = None) -> Catalogue:
    """Build a catalogue from already-parsed data (``source`` names it in error messages)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogueError(f"{source}: the top level must be a mapping with {', '.join(_SECTIONS)}.")
    unknown = sorted(set(map(str, raw)) - set(_SECTIONS))
    if unknown:
        raise CatalogueError(f"{source}: unknown section(s) {unknown}; allowed: {', '.join(_SECTIONS)}.")
    models: dict[str, ModelEntry] = {TINY_ENTRY.name: TINY_ENTRY}
    adapters: dict[str, dict[str, AdapterEntry]] = {"lora": {}, "ti": {}, "hypernetwork": {}}
    for section, kind in _SECTIONS.items():
        items = raw.get(section) or []
        if not isinstance(items, list):
            raise CatalogueError(f"{source}: '{section}' must be a list of entries.")
        for index, item in enumerate(items):
            where = _where(source, section, index, item)
            if kind is None:
                entry = _parse_model(item, where)
                if entry.name in models:
                    reason = "is reserved for the built-in model" if entry.name == TINY_ENTRY.name else "appears twice"
                    raise CatalogueError(f"{where}: the name '{entry.name}' {reason}.")
                models[entry.name] = entry
            else:
                adapter = _parse_adapter(item, cast(AdapterKind, kind), where)
                if adapter.name in adapters[kind]:
                    raise CatalogueError(f"{where}: the name '{adapter.name}' appears twice.")
                adapters[kind][adapter.name] = adapter
    return Catalogue(
        models=models,
        loras=adapters["lora"],
        textual_inversions=adapters["ti"],
        path=path,
        hypernetworks=adapters["hypernetwork"],
    )


def _where(source: str, section: str, index: int, item: Any) -> str:
    """How an error message names one entry: the file, the section, the position and the name if there is one."""
    name = item.get("name") if isinstance(item, dict) else None
    return f"{source}: {section}[{index}]" + (f" ('{name}')" if isinstance(name, str) else "")


def _check_keys(item: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: an entry must be a mapping, not {type(item).__name__}.")
    unknown = sorted(set(map(str, item)) - allowed)
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}.")
    return item


def _text(item: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            raise CatalogueError(f"{where}: '{key}' is required.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: '{key}' must be a non-empty string, not {value!r}.")
    return value.strip()


def _flag(item: dict[str, Any], key: str, where: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise CatalogueError(f"{where}: '{key}' must be true or false, not {value!r}.")
    return value


def _sha256(item: dict[str, Any], where: str) -> str | None:
    value = _text(item, "sha256", where)
    if value is None:
        return None
    digest = value.lower()
    if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
        raise CatalogueError(f"{where}: 'sha256' must be 64 hexadecimal digits, not {value!r}.")
    return digest


def _url(item: dict[str, Any], where: str) -> str | None:
    value = _text(item, "url", where)
    if value is not None and (urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc):
        raise CatalogueError(f"{where}: 'url' must be an http(s) URL, not {value!r}.")
    return value


def _triggers(item: dict[str, Any], where: str) -> tuple[str, ...]:
    value = item.get("triggers", ())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(word, str) for word in value):
        raise CatalogueError(f"{where}: 'triggers' must be a list of strings, not {value!r}.")
    return tuple(value)


def _baseline(item: dict[str, Any], where: str, required: bool) -> Baseline | None:
    value = _text(item, "baseline", where, required=required)
    if value is None:
        return None
    try:
        return normalise_baseline(value)
    except ValueError as exc:
        raise CatalogueError(f"{where}: {exc}.") from None


def _file_from_url(url: str | None) -> str | None:
    """The file name a download URL ends with, when it is a checkpoint."""
    if url is None:
        return None
    name = PurePosixPath(urlparse(url).path).name
    return name if name.lower().endswith(CHECKPOINT_SUFFIXES) else None


def _parse_model(raw: Any, where: str) -> ModelEntry:
    item = _check_keys(raw, _MODEL_KEYS, where)
    url = _url(item, where)
    entry = ModelEntry(
        name=cast(str, _text(item, "name", where, required=True)),
        baseline=cast(Baseline, _baseline(item, where, required=True)),
        inpainting=_flag(item, "inpainting", where),
        nsfw=_flag(item, "nsfw", where),
        file=_text(item, "file", where) or _file_from_url(url),
        sha256=_sha256(item, where),
        url=url,
        hub_id=_text(item, "hub_id", where),
        config=_text(item, "config", where),
        triggers=_triggers(item, where),
        description=_text(item, "description", where) or "",
    )
    if entry.file is None and entry.hub_id is None:
        hint = " (the url does not end in a file name, so give 'file')" if url else ""
        raise CatalogueError(f"{where}: give 'file' (a checkpoint or diffusers folder) or 'hub_id'{hint}.")
    if entry.file is not None and not entry.is_single_file and (entry.sha256 or entry.url):
        raise CatalogueError(
            f"{where}: 'sha256' and 'url' apply to a single checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}), "
            f"but '{entry.file}' is a diffusers folder."
        )
    return entry


def _parse_adapter(raw: Any, kind: AdapterKind, where: str) -> AdapterEntry:
    item = _check_keys(raw, _ADAPTER_KEYS, where)
    name = cast(str, _text(item, "name", where, required=True))
    url = _url(item, where)
    # Without a file name the adapter gets one in its kind's folder, so a URL alone is enough.
    default_file = f"{_ADAPTER_FOLDERS[kind]}/{name.replace('/', '_')}{_ADAPTER_SUFFIXES[kind]}"
    return AdapterEntry(
        name=name,
        kind=kind,
        file=_text(item, "file", where) or default_file,
        sha256=_sha256(item, where),
        url=url,
        triggers=_triggers(item, where),
        baseline=_baseline(item, where, required=False),
        description=_text(item, "description", where) or "",
    )
