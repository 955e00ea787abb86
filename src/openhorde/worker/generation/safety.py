"""NSFW check of finished images with diffusers' CLIP safety checker, and the horde's censoring policy."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openhorde.worker.generation.images import censor_image
from openhorde.worker.generation.spec import GeneratedImage, Metadata

TINY_SAFETY_SEED = 20261127
_CHECKER_SUBFOLDER = "safety_checker"
_PROCESSOR_SUBFOLDER = "feature_extractor"


def _image_processor_class() -> Any:
    """transformers' CLIP processor; its PIL variant when torchvision is absent (the default one then logs a notice)."""
    import transformers

    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "CLIPImageProcessorPil"):
        return transformers.CLIPImageProcessorPil
    return transformers.CLIPImageProcessor


class SafetyChecker:
    """Flags NSFW images with a ``StableDiffusionSafetyChecker`` (CLIP vision + concept embeddings)."""

    def __init__(self, model: Any, processor: Any, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | str = "cpu") -> SafetyChecker:
        """Load from a folder: either the diffusers layout (``safety_checker/`` + ``feature_extractor/``) or one
        folder holding both ``config.json`` and ``preprocessor_config.json``."""
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

        root = Path(folder)
        model_dir = root / _CHECKER_SUBFOLDER if (root / _CHECKER_SUBFOLDER).is_dir() else root
        processor_dir = root / _PROCESSOR_SUBFOLDER if (root / _PROCESSOR_SUBFOLDER).is_dir() else root
        model = StableDiffusionSafetyChecker.from_pretrained(str(model_dir), local_files_only=True)
        processor = _image_processor_class().from_pretrained(str(processor_dir), local_files_only=True)
        return cls(model, processor, device)

    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        """One flag per image: True when it looks NSFW."""
        if not images:
            return []
        pixels = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt").pixel_values
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            # The vectorised variant of forward(): same scores, no per-image Python loop or log line. It blanks
            # "images" it flags, so it gets a throwaway tensor.
            _, flagged = self.model.forward_onnx(pixels.to(self.device, dtype), torch.zeros(len(images), 1))
        return [bool(flag) for flag in flagged.tolist()]


def build_builtin_safety_checker(device: torch.device | str = "cpu") -> SafetyChecker:
    """The safety checker the built-in tiny models ship: a small CLIP checker with weights built in code.

    The tiny models' weights are random, so what they draw is noise, never a picture of anything; their checker
    runs the same step as a real one (CLIP features, concept scores, censoring) with concept thresholds no noise
    image reaches. It lets a demo horde serve the requests many clients send by default (``censor_nsfw: true``).
    A real model needs a real checker (``safety_model``)."""
    return build_tiny_safety_checker(flag_everything=False, device=device)


def build_tiny_safety_checker(flag_everything: bool, device: torch.device | str = "cpu") -> SafetyChecker:
    """A small CLIP safety checker built in code with fixed weights, for tests: it flags every image or none.

    Cosine similarities lie in [-1, 1]; a concept threshold of -2 is always exceeded and one of 2 never is.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    config = CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SAFETY_SEED)
        model = StableDiffusionSafetyChecker(config)
        model.concept_embeds.copy_(torch.randn_like(model.concept_embeds))
        model.special_care_embeds.copy_(torch.randn_like(model.special_care_embeds))
    threshold = -2.0 if flag_everything else 2.0
    model.concept_embeds_weights.fill_(threshold)
    model.special_care_embeds_weights.fill_(threshold)
    processor = _image_processor_class()(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True
    )
    return SafetyChecker(model, processor, device)


def apply_safety(
    images: list[GeneratedImage], flags: Sequence[bool], censor: bool, width: int, height: int
) -> list[GeneratedImage]:
    """The horde's policy: a flagged image is replaced by a censor image when ``censor`` (the job asked for it, or
    the worker is SFW), else kept with an ``information: nsfw`` note."""
    for generated, flagged in zip(images, flags, strict=True):
        if not flagged:
            continue
        if censor:
            generated.image = censor_image(width, height)
            generated.state = "censored"
            generated.metadata.append(Metadata("censorship", "nsfw"))
        else:
            generated.metadata.append(Metadata("information", "nsfw"))
    return images
