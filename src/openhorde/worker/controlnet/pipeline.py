"""ControlNet for the engine: which ControlNet file serves a job, its control map, and the pipeline that runs it.

``ControlNetSupport.prepare`` fetches, through the model store's ``fetch`` (digests checked, disk budget kept),
the ControlNet file of every control type the model reference's ``controlnet.json`` lists for the baselines
served, and the annotators' weights; what cannot be fetched or loaded is logged and left out. A baseline is
*complete* when every control type the reference lists for it can be served: the AI Horde's pop has only
``allow_controlnet``, so a worker that advertises it must take every type.

The ControlNet pipeline is diffusers' ``StableDiffusionControlNetPipeline`` made ``from_pipe`` the loaded
model's pipeline: the same UNet, VAE and text encoder, only the ControlNet's weights are new. As the AI Horde's
worker, a ControlNet job starts from noise (the source image is the control's, not an init image).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from openhorde.model_reference import ReferenceModel
from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.annotators import Annotators
from openhorde.worker.generation import images as imaging
from openhorde.worker.generation.spec import GenerationSpec

if TYPE_CHECKING:
    from openhorde.worker.models.store import ModelStore

logger = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


class ControlNetUnavailable(LookupError):
    """The job's control type cannot be served for its model on this worker."""


@dataclass
class ControlNetSupport:
    """The ControlNet files on this worker by (baseline, control type), its annotators, and each model's baseline."""

    files: dict[tuple[str, str], Path]
    annotators: Annotators
    model_baselines: dict[str, str] = field(default_factory=dict)
    listed: dict[str, set[names.ControlType]] = field(default_factory=dict)
    """The control types the model reference has a ControlNet for, by baseline."""

    @classmethod
    def prepare(
        cls,
        reference: Mapping[str, ReferenceModel],
        store: ModelStore,
        model_baselines: Mapping[str, str],
        device: torch.device,
    ) -> ControlNetSupport:
        """Fetch what the served baselines need (logging what fails), then load the annotators."""
        from openhorde.worker.models.catalogue import RemoteFile
        from openhorde.worker.models.download import ChecksumMismatch, ModelUnavailable, fetch

        def get(file: RemoteFile, label: str) -> Path | None:
            try:
                return fetch(file, store, progress=False, label=label)
            except (ModelUnavailable, ChecksumMismatch, OSError) as exc:
                logger.warning("ControlNet: %s is not available: %s", label, exc)
                return None

        files: dict[tuple[str, str], Path] = {}
        listed: dict[str, set[names.ControlType]] = {}
        for baseline in sorted(set(model_baselines.values())):
            for control_type in names.CONTROL_TYPES:
                entry = reference.get(names.reference_entry(control_type, baseline) or "")
                weights = [f for f in entry.files if f.path.endswith(WEIGHT_SUFFIXES)] if entry else []
                if entry is None or not weights:
                    continue
                listed.setdefault(baseline, set()).add(control_type)
                ref = weights[0]
                remote = RemoteFile(f"{names.CONTROLNET_FOLDER}/{ref.path}", ref.url, ref.sha256, ref.md5)
                path = get(remote, entry.name)
                if path is not None:
                    files[(baseline, control_type)] = path
        needed: set[names.ControlType] = {kind for kinds in listed.values() for kind in kinds}
        for kind in sorted(needed):
            for file in names.ANNOTATOR_FILES[kind]:
                get(RemoteFile(f"{names.ANNOTATOR_FOLDER}/{file.path}", file.url), f"annotator {file.path}")
        annotators = Annotators.load(store.path_for(names.ANNOTATOR_FOLDER), device, needed)
        return cls(files, annotators, dict(model_baselines), listed)

    def types(self, baseline: str) -> list[str]:
        """The control types served for ``baseline``: its ControlNet file is here and its annotator loaded."""
        have = set(self.annotators.types)
        return [kind for kind in names.CONTROL_TYPES if (baseline, kind) in self.files and kind in have]

    def complete_baselines(self) -> tuple[str, ...]:
        """The baselines for which every control type the reference lists is served."""
        return tuple(
            baseline for baseline, kinds in sorted(self.listed.items()) if kinds and kinds <= set(self.types(baseline))
        )

    def file_for(self, model: str, control_type: str) -> Path:
        """The ControlNet file for a job on ``model`` (raises ``ControlNetUnavailable``)."""
        baseline = self.model_baselines.get(model)
        path = self.files.get((baseline or "", control_type))
        if path is None:
            raise ControlNetUnavailable(f"no {control_type} ControlNet for model {model!r} ({baseline}) on this worker")
        return path

    def job_inputs(self, model: str, spec: GenerationSpec) -> tuple[Path, Image.Image]:
        """A job's ControlNet file and control map (raises ``ControlNetUnavailable`` when it cannot be served)."""
        if spec.control_type is None or spec.source_image is None:
            raise ControlNetUnavailable("a ControlNet job needs a control type and a source image")
        path = self.file_for(model, spec.control_type)
        control = self.control_map(spec.control_type, spec.source_image, spec.width, spec.height, spec.image_is_control)
        return path, control

    def control_map(
        self, control_type: str, source: Image.Image, width: int, height: int, is_control: bool
    ) -> Image.Image:
        """The control map at the job's size: the source itself when it already is one, else the annotator's."""
        fitted = imaging.flatten(imaging.fit_source(source, width, height))
        return fitted if is_control else self.annotators(control_type, fitted)


def controlnet_pipeline(base: Any, controlnet: Any) -> Any:
    """A ControlNet pipeline on ``base``'s modules (nothing of the base model is copied or loaded again)."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline.from_pipe(base, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_controlnet_support(
    reference: str, store: ModelStore, model_baselines: Mapping[str, str], device: torch.device
) -> ControlNetSupport:
    """The worker's ControlNet support from the ``controlnet.json`` at ``reference`` (URL or file), logged.

    Without a readable reference (no network and no cached copy) the worker serves no ControlNet, and says why.
    """
    from openhorde.model_reference import ReferenceError
    from openhorde.worker.logs import log_event
    from openhorde.worker.models.download import ModelUnavailable
    from openhorde.worker.models.reference import load_reference

    try:
        records = load_reference(reference, store).models
    except (ModelUnavailable, ReferenceError) as exc:
        log_event(logger, logging.WARNING, "controlnet", f"ControlNet is not served: {exc}")
        records = {}
    support = ControlNetSupport.prepare(records, store, model_baselines, device)
    served = {baseline: support.types(baseline) for baseline in sorted(set(model_baselines.values()))}
    summary = "; ".join(f"{baseline}: {', '.join(kinds) or 'none'}" for baseline, kinds in served.items())
    log_event(logger, logging.INFO, "controlnet", f"ControlNet types served: {summary}", served=served)
    return support
