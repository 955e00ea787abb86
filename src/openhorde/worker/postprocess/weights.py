"""Post-processor weights fetched from the model reference: the files ``PostProcessors.load`` then reads.

The AI Horde keeps its post-processors in files beside ``stable_diffusion.json`` (``esrgan.json``,
``gfpgan.json``, ``codeformer.json``), so their location follows ``model_reference``: the same folder of the
same URL (or directory). Each file goes through ``download.fetch`` (digest check, lock, resume, progress).
Only the restorer's own weights are fetched for the face fixers: the reference also lists facexlib's
detection and parsing networks, which this worker does not use (it finds faces with OpenCV).
Background removal's ``u2net.onnx`` is in no reference file (rembg names its own download); it is only used
when the owner puts it in the model store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import urlparse, urlunparse

from openhorde.model_reference import ReferenceError
from openhorde.worker.logs import log_event
from openhorde.worker.models.catalogue import RemoteFile
from openhorde.worker.models.download import ChecksumMismatch, ModelUnavailable, fetch
from openhorde.worker.models.reference import is_url, load_reference
from openhorde.worker.models.store import ModelStore
from openhorde.worker.postprocess import names as pp

logger = logging.getLogger(__name__)

UPSCALER_REFERENCE = "esrgan.json"
FACE_FIXER_REFERENCES = {"GFPGAN": "gfpgan.json", "CodeFormers": "codeformer.json"}


def reference_file(name: str) -> str | None:
    """The reference file that lists post-processor ``name`` (None for background removal: none lists it)."""
    if name in pp.UPSCALER_FILES:
        return UPSCALER_REFERENCE
    return FACE_FIXER_REFERENCES.get(name)


def sibling(location: str, file_name: str) -> str:
    """``file_name`` in the folder of ``location`` (a URL or a local path), where the reference keeps its files."""
    if is_url(location):
        parts = urlparse(location)
        folder = PurePosixPath(parts.path).parent
        return urlunparse(parts._replace(path=str(folder / file_name), query="", fragment=""))
    return str(PurePosixPath(location).parent / file_name)


def fetch_post_processor_weights(wanted: Sequence[str], store: ModelStore, model_reference: str) -> dict[str, str]:
    """Download the missing weight files of the ``wanted`` post-processors; returns why each one failed, by name.

    A file already in the store is used as it is, without reading the reference. A post-processor whose file
    cannot be had is reported, not raised: the worker then serves the others.
    """
    problems: dict[str, str] = {}
    references: dict[str, dict[str, RemoteFile] | str] = {}
    for name in wanted:
        file_name = pp.POST_PROCESSOR_FILES[name]
        if store.path_for(file_name).is_file():
            continue  # no network at start when everything is there; a damaged file fails to load, with its path
        listing = reference_file(name)
        if listing is None:
            problems[name] = f"{file_name} is in no model reference file; put it in {store.root}"
            continue
        if listing not in references:  # one read of each reference file, however many names it serves
            references[listing] = _files_of(sibling(model_reference, listing), store)
        files = references[listing]
        remote = files.get(file_name) if isinstance(files, dict) else None
        if remote is None:
            problems[name] = files if isinstance(files, str) else f"{listing} lists no file {file_name}"
            continue
        try:
            fetch(remote, store, label=f"post-processor {name}")
        except (ModelUnavailable, ChecksumMismatch, OSError) as exc:
            problems[name] = str(exc)
    for name, problem in problems.items():
        log_event(logger, logging.WARNING, "post_processor_unavailable", f"{name}: {problem}", post_processor=name)
    return problems


def _files_of(location: str, store: ModelStore) -> dict[str, RemoteFile] | str:
    """The downloadable files of one reference file by file name, or why it cannot be read."""
    try:
        reference = load_reference(location, store)
    except (ModelUnavailable, ReferenceError) as exc:
        return str(exc)
    files: dict[str, RemoteFile] = {}
    for record in reference.models.values():
        for file in record.files:
            if file.url:
                # Kept at the store's top level under the file's own name, where ``PostProcessors.load`` looks.
                name = PurePosixPath(file.path).name
                files.setdefault(name, RemoteFile(name, file.url, file.sha256, file.md5))
    return files
