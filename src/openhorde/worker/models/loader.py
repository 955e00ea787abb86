"""Turning a catalogue entry into a ready diffusers pipeline, fully offline for files on disk.

The entry decides the path:

1. the built-in ``openhorde-tiny`` → built in code;
2. a single checkpoint file (``.safetensors``/``.ckpt``) → ``from_single_file`` with a config folder
   (the entry's own ``config``, else the one shipped per baseline in ``configs/``) and our
   offline CLIP tokenizers, because diffusers would otherwise fetch both from the hub;
3. a diffusers folder → ``from_pretrained`` with ``local_files_only``;
4. a hub repo id → ``from_pretrained`` from the hub, unless the hub is switched off (``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

import huggingface_hub
import torch

# Imported from their modules, not from `diffusers`: mypy reads the package's lazy __init__ as its dummy
# placeholder classes, which have none of the real methods.
from diffusers.loaders.single_file import FromSingleFileMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import StableDiffusionXLPipeline
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_inpaint import (
    StableDiffusionXLInpaintPipeline,
)
from transformers import CLIPTokenizer

from openhorde.worker.models.catalogue import Baseline, ModelEntry
from openhorde.worker.models.store import ModelStore, ModelUnavailable
from openhorde.worker.models.tiny import build_tiny_pipeline
from openhorde.worker.models.tokenizer import clip_tokenizer

logger = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).parent / "configs"
"""The shipped diffusers config folders, one per baseline (plus ``sd1_inpainting``)."""

_PIPELINES: dict[tuple[Baseline, bool], type[DiffusionPipeline]] = {
    ("sd1", False): StableDiffusionPipeline,
    ("sd1", True): StableDiffusionInpaintPipeline,
    ("sd2", False): StableDiffusionPipeline,
    ("sd2", True): StableDiffusionInpaintPipeline,
    ("sdxl", False): StableDiffusionXLPipeline,
    ("sdxl", True): StableDiffusionXLInpaintPipeline,
}
"""The pipeline class for each (baseline, inpainting) pair."""


def pipeline_class(entry: ModelEntry) -> type[DiffusionPipeline]:
    """The diffusers pipeline class that fits the entry's baseline and inpainting flag."""
    return _PIPELINES[(entry.baseline, entry.inpainting)]


def shipped_config_dir(baseline: Baseline, inpainting: bool = False) -> Path | None:
    """The shipped config folder for a baseline, or None when none ships (SD2 and SDXL inpainting)."""
    folder = CONFIGS_DIR / (f"{baseline}_inpainting" if inpainting else baseline)
    return folder if (folder / "model_index.json").is_file() else None


def tokenizers_for(baseline: Baseline) -> dict[str, CLIPTokenizer]:
    """The tokenizer arguments a pipeline of this baseline takes, built offline.

    SD 2's OpenCLIP encoder and SDXL's second encoder were trained with "!" as padding; SD 1 and
    SDXL's first encoder pad with the end-of-text token.
    """
    if baseline == "sd1":
        return {"tokenizer": clip_tokenizer()}
    if baseline == "sd2":
        return {"tokenizer": clip_tokenizer("!")}
    return {"tokenizer": clip_tokenizer(), "tokenizer_2": clip_tokenizer("!")}


def load_pipeline(
    entry: ModelEntry,
    store: ModelStore,
    device: torch.device,
    dtype: torch.dtype,
    progress: bool = True,
) -> DiffusionPipeline:
    """The entry's pipeline on ``device`` in ``dtype``: files verified (and fetched) through the store first."""
    started = time.perf_counter()
    if entry.source == "builtin":
        pipe = cast(DiffusionPipeline, build_tiny_pipeline(inpainting=entry.inpainting))
        how = "built in code"
    elif _use_file(entry, store):
        path = store.ensure(entry, progress=progress)
        if entry.is_single_file:
            pipe = _from_single_file(entry, store, path, dtype)
            how = f"from {path.name}"
        else:
            pipe = _from_folder(entry, path, dtype)
            how = f"from the folder {path}"
    elif entry.hub_id is not None:
        pipe = _from_hub(entry, entry.hub_id, dtype)
        how = f"from the hub ({entry.hub_id})"
    else:
        raise ModelUnavailable(f"Model '{entry.name}' has neither a file nor a hub id in the catalogue.")
    pipe = pipe.to(device)
    if pipe.dtype != dtype:
        # Only the built-in model gets here (the loaders already load in `dtype`); diffusers logs a
        # warning on every dtype cast, so cast only when needed.
        pipe = pipe.to(dtype=dtype)
    logger.info("Loaded %s %s in %.2f s", entry.name, how, time.perf_counter() - started)
    return pipe


def _use_file(entry: ModelEntry, store: ModelStore) -> bool:
    """Whether to load from the entry's file: it is there or can be downloaded, or there is no hub id to fall back on.

    In the last case ``store.ensure`` raises the clear "missing, no URL" error.
    """
    if entry.file is None:
        return False
    return store.resolve(entry).exists() or entry.url is not None or entry.hub_id is None


def _config_dir(entry: ModelEntry, store: ModelStore) -> Path:
    """The config folder ``from_single_file`` builds the pipeline from."""
    if entry.config is not None:
        folder = store.path_for(entry.config)
        if not (folder / "model_index.json").is_file():
            raise ModelUnavailable(f"Model '{entry.name}': the config folder {folder} has no model_index.json.")
        return folder
    shipped = shipped_config_dir(entry.baseline, entry.inpainting)
    if shipped is None:
        raise ModelUnavailable(
            f"Model '{entry.name}': no config ships for {entry.baseline} inpainting checkpoints; "
            "give the entry a 'config' folder (a diffusers model folder without weights is enough)."
        )
    return shipped


def _from_single_file(entry: ModelEntry, store: ModelStore, path: Path, dtype: torch.dtype) -> DiffusionPipeline:
    cls = pipeline_class(entry)
    if not issubclass(cls, FromSingleFileMixin):  # all SD pipelines are; this narrows the type
        raise ModelUnavailable(f"Model '{entry.name}': {cls.__name__} cannot load single-file checkpoints.")
    kwargs: dict[str, Any] = {**tokenizers_for(entry.baseline)}
    if entry.baseline != "sdxl":
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        return cls.from_single_file(
            str(path), config=str(_config_dir(entry, store)), local_files_only=True, dtype=dtype, **kwargs
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(
            f"Model '{entry.name}': {path.name} could not be loaded as {entry.baseline}: {exc}"
        ) from exc


def _from_folder(entry: ModelEntry, path: Path, dtype: torch.dtype) -> DiffusionPipeline:
    cls = pipeline_class(entry)
    kwargs: dict[str, Any] = {}
    # Folders made from single files or trimmed by hand may lack tokenizers; ours are the same vocabulary.
    if not (path / "tokenizer").is_dir():
        kwargs.update(tokenizers_for(entry.baseline))
    if entry.baseline != "sdxl":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        return cls.from_pretrained(str(path), local_files_only=True, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"Model '{entry.name}': the folder {path} could not be loaded: {exc}") from exc


def _from_hub(entry: ModelEntry, hub_id: str, dtype: torch.dtype) -> DiffusionPipeline:
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise ModelUnavailable(
            f"Model '{entry.name}' comes from the hub ({hub_id}), but HF_HUB_OFFLINE is set; "
            "give it a 'file' (a checkpoint or diffusers folder) instead."
        )
    kwargs: dict[str, Any] = {}
    if entry.baseline != "sdxl":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        return pipeline_class(entry).from_pretrained(hub_id, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"Model '{entry.name}': {hub_id} could not be loaded from the hub: {exc}") from exc
