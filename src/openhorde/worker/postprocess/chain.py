"""The post-processors a worker has loaded, and running a job's list of them over each image."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image

from openhorde.worker.postprocess import names as pp
from openhorde.worker.postprocess.background import BackgroundRemover
from openhorde.worker.postprocess.facefix import FaceFixer
from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError
from openhorde.worker.postprocess.upscale import Upscaler

logger = logging.getLogger(__name__)


class _Step(Protocol):
    def __call__(self, image: Image.Image, strength: float) -> Image.Image: ...


class MissingPostProcessor(LookupError):
    """A job asks for a post-processor this worker has not loaded."""


class PostProcessors:
    """The post-processors loaded on this worker, by their AI Horde names."""

    def __init__(
        self,
        upscalers: Iterable[Upscaler] = (),
        face_fixers: Iterable[FaceFixer] = (),
        background: BackgroundRemover | None = None,
    ) -> None:
        self.upscalers = {upscaler.name: upscaler for upscaler in upscalers}
        self.face_fixers = {fixer.name: fixer for fixer in face_fixers}
        self.background = background

    @classmethod
    def load(cls, wanted: Sequence[str], folder: Path, device: torch.device) -> PostProcessors:
        """The ``wanted`` post-processors whose weights are in ``folder`` under the model reference's file names.

        A missing or unreadable file is logged and left out (the worker then does not advertise that one);
        the others still load.
        """
        upscalers, face_fixers, background = [], [], None
        for name in wanted:
            path = folder / pp.POST_PROCESSOR_FILES[name]
            if not path.is_file():
                logger.warning("Post-processor %s is not available: %s does not exist", name, path)
                continue
            try:
                match pp.kind(name):
                    case "upscaler":
                        upscalers.append(Upscaler.load(name, path, device))
                    case "facefixer":
                        face_fixers.append(FaceFixer.load(name, path, device))
                    case "background":
                        background = BackgroundRemover.load(path, device)
            except PostProcessorLoadError as exc:
                logger.warning("Post-processor %s is not available: %s", name, exc)
        return cls(upscalers, face_fixers, background)

    @property
    def names(self) -> list[str]:
        """The AI Horde names of everything loaded."""
        loaded = [*self.upscalers, *self.face_fixers]
        return loaded + ([pp.STRIP_BACKGROUND] if self.background is not None else [])

    def missing(self, wanted: Iterable[str]) -> list[str]:
        """The names in ``wanted`` that are not loaded here."""
        have = set(self.names)
        return [name for name in wanted if name not in have]

    def apply(
        self,
        image: Image.Image,
        wanted: Sequence[str],
        order: pp.PostProcessingOrder = pp.DEFAULT_ORDER,
        facefixer_strength: float = pp.DEFAULT_FACEFIXER_STRENGTH,
    ) -> Image.Image:
        """``image`` run through the ``wanted`` post-processors in ``order``."""
        missing = self.missing(wanted)
        if missing:
            raise MissingPostProcessor(f"post-processor(s) not loaded on this worker: {', '.join(missing)}")
        for name in pp.ordered(wanted, order):
            image = self._step(name)(image, facefixer_strength)
        return image

    def _step(self, name: str) -> _Step:
        if name in self.upscalers:
            upscaler = self.upscalers[name]
            return lambda image, _strength: upscaler(image)
        if name in self.face_fixers:
            return self.face_fixers[name]
        background = self.background
        assert background is not None
        return lambda image, _strength: background(image)
