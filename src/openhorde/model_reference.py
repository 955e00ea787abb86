"""The AI Horde image model reference format, read by both the worker and the server.

The reference (``stable_diffusion.json`` of Haidra-Org/AI-Horde-image-model-reference; also
``esrgan.json``, ``gfpgan.json``… for post-processors) maps each model name to a record::

    "AlbedoBase XL (SDXL)": {
      "name": "AlbedoBase XL (SDXL)", "baseline": "stable_diffusion_xl", "type": "ckpt",
      "inpainting": false, "nsfw": false, "description": "…", "showcases": ["https://…webp"],
      "trigger": ["…"], "features_not_supported": ["hires_fix", "inpainting", "controlnet"],
      "size_on_disk_bytes": 6938040682,
      "config": {
        "files": [{"path": "albedo_base_xl.safetensors", "sha256sum": "1718B5…", "md5sum": "…"}],
        "download": [{"file_name": "albedo_base_xl.safetensors", "file_path": "", "file_url": "https://…"}]
      }
    }

``config.files`` names the files and their digests, ``config.download`` where each comes from (joined by
file name; ``file_path`` is a sub-folder). Reading is lenient about keys it does not use (the upstream
format grows) and strict about the ones it does: a record of the wrong shape is an error that names it.
This module only parses; fetching the file is the caller's (the worker caches it, the server's CLI reads
a path or a URL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_REFERENCE_URL = (
    "https://raw.githubusercontent.com/Haidra-Org/AI-Horde-image-model-reference/main/stable_diffusion.json"
)
"""The public image model reference that AI Horde workers read."""

_HEX = re.compile(r"^[0-9a-fA-F]+$")


class ReferenceError(ValueError):
    """The model reference is not valid JSON, or one of its records has the wrong shape."""


@dataclass(frozen=True)
class ReferenceFile:
    """One file of a model: its path (below ``file_path`` when given), digests, and URL when it is downloadable."""

    path: str
    sha256: str | None = None
    md5: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ReferenceModel:
    """One model of the reference, with the fields the worker and the server use."""

    name: str
    baseline: str = ""
    """Empty for records without one (post-processors, safety checker)."""
    type: str | None = None
    """``ckpt`` for generation models; ``realesrgan``, ``gfpgan``… in the post-processor files."""
    inpainting: bool = False
    nsfw: bool = False
    description: str = ""
    showcases: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    style: str | None = None
    version: str | None = None
    homepage: str | None = None
    features_not_supported: tuple[str, ...] = ()
    size_on_disk_bytes: int | None = None
    files: tuple[ReferenceFile, ...] = ()


def loads(text: str | bytes, source: str = "<model reference>") -> dict[str, ReferenceModel]:
    """Parse a reference file's text; ``source`` (a path or URL) names it in error messages."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReferenceError(f"{source}: not valid JSON ({exc}).") from exc
    return parse(raw, source)


def parse(raw: Any, source: str = "<model reference>") -> dict[str, ReferenceModel]:
    """The records of an already-decoded reference, by name."""
    if not isinstance(raw, dict):
        raise ReferenceError(f"{source}: the top level must be an object of model name → record.")
    models: dict[str, ReferenceModel] = {}
    for key, record in raw.items():
        model = _model(record, f"{source}: '{key}'")
        models[model.name] = model
    return models


def _model(record: Any, where: str) -> ReferenceModel:
    if not isinstance(record, dict):
        raise ReferenceError(f"{where}: a record must be an object.")
    name = _text(record, "name", where, required=True)
    baseline = _text(record, "baseline", where)
    size = record.get("size_on_disk_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ReferenceError(f"{where}: 'size_on_disk_bytes' must be a whole number of bytes, not {size!r}.")
    return ReferenceModel(
        name=name or "",
        baseline=baseline or "",
        type=_text(record, "type", where),
        inpainting=_flag(record, "inpainting", where),
        nsfw=_flag(record, "nsfw", where),
        description=_text(record, "description", where) or "",
        showcases=_texts(record, "showcases", where),
        triggers=_texts(record, "trigger", where),
        tags=_texts(record, "tags", where),
        style=_text(record, "style", where),
        version=_text(record, "version", where),
        homepage=_text(record, "homepage", where),
        features_not_supported=_texts(record, "features_not_supported", where),
        size_on_disk_bytes=size,
        files=_files(record.get("config"), where),
    )


def _files(config: Any, where: str) -> tuple[ReferenceFile, ...]:
    """``config.files`` joined with ``config.download`` by file name, in the order files are listed."""
    if config is None:
        return ()
    if not isinstance(config, dict):
        raise ReferenceError(f"{where}: 'config' must be an object.")
    listed, downloads = config.get("files") or [], config.get("download") or []
    if not isinstance(listed, list) or not isinstance(downloads, list):
        raise ReferenceError(f"{where}: 'config.files' and 'config.download' must be lists.")
    # Joined by file name in order: several files may share a name in different folders (config.json).
    urls: dict[str, list[tuple[str, str]]] = {}
    for index, item in enumerate(downloads):
        spot = f"{where} config.download[{index}]"
        if not isinstance(item, dict):
            raise ReferenceError(f"{spot}: must be an object.")
        file_name = _text(item, "file_name", spot, required=True) or ""
        folder = (_text(item, "file_path", spot) or "").strip("/")
        urls.setdefault(file_name, []).append((folder, _text(item, "file_url", spot, required=True) or ""))
    files: list[ReferenceFile] = []
    for index, item in enumerate(listed):
        spot = f"{where} config.files[{index}]"
        if not isinstance(item, dict):
            raise ReferenceError(f"{spot}: must be an object.")
        path = _text(item, "path", spot, required=True) or ""
        folder, url = urls[path].pop(0) if urls.get(path) else ("", None)
        files.append(
            ReferenceFile(
                path=f"{folder}/{path}" if folder else path,
                sha256=_digest(item, "sha256sum", 64, spot),
                md5=_digest(item, "md5sum", 32, spot),
                url=url,
            )
        )
    # A download without a files entry is still a file of the model (no digest to check it by).
    files.extend(
        ReferenceFile(path=f"{folder}/{name}" if folder else name, url=url)
        for name, left in urls.items()
        for folder, url in left
    )
    return tuple(files)


def _text(record: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise ReferenceError(f"{where}: '{key}' is required.")
        return None
    if not isinstance(value, str):
        raise ReferenceError(f"{where}: '{key}' must be a string, not {value!r}.")
    return value


def _flag(record: Mapping[str, Any], key: str, where: str) -> bool:
    value = record.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ReferenceError(f"{where}: '{key}' must be true or false, not {value!r}.")
    return value


def _texts(record: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = record.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ReferenceError(f"{where}: '{key}' must be a list of strings, not {value!r}.")
    return tuple(value)


def _digest(record: Mapping[str, Any], key: str, length: int, where: str) -> str | None:
    """A hex digest in lower case (the reference mixes cases); a malformed one is an error, not ignored."""
    value = _text(record, key, where)
    if value is None:
        return None
    if len(value) != length or not _HEX.match(value):
        raise ReferenceError(f"{where}: '{key}' must be {length} hexadecimal digits, not {value!r}.")
    return value.lower()
