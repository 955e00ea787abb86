"""The body of ``POST /api/v2/generate/async`` (AI Horde v2 field names), built from the command's options.

Every parameter is sent explicitly, even at its documented default, so the same command asks the same of
every server (the public AI Horde's server applies other defaults than its own documentation to a few).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

NEGATIVE_SEPARATOR = "###"
"""The AI Horde's prompt syntax: ``positive###negative``."""
LORA_STRENGTH_LIMIT = 5.0
"""LoRA strengths (model and clip) must lie within ±this."""
SOURCE_WEBP_QUALITY = 95

SourceProcessing = Literal["img2img", "inpainting", "outpainting"]
UPSCALERS = ("RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp")
FACE_FIXERS = ("GFPGAN", "CodeFormers")
STRIP_BACKGROUND = "strip_background"
CONTROL_TYPES = ("canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles", "hough")


class InputFileError(ValueError):
    """A source image or mask that cannot be read; the message names the file."""


@dataclass(frozen=True)
class LoraChoice:
    """A LoRA and the strength applied to both the model and the text encoder."""

    name: str
    strength: float = 1.0

    def to_wire(self) -> dict[str, Any]:
        """The ``params.loras`` item."""
        return {"name": self.name, "model": self.strength, "clip": self.strength}


@dataclass(frozen=True)
class HypernetworkChoice:
    """A hypernetwork and its strength (``params.hypernetworks``, an OpenHorde extension)."""

    name: str
    strength: float = 1.0

    def to_wire(self) -> dict[str, Any]:
        """The ``params.hypernetworks`` item."""
        return {"name": self.name, "strength": self.strength}


def parse_lora(text: str) -> LoraChoice:
    """``NAME`` or ``NAME:STRENGTH`` (the strength applies to model and clip); ``ValueError`` says what is wrong."""
    return LoraChoice(*_name_and_strength(text, "LoRA"))


def parse_hypernetwork(text: str) -> HypernetworkChoice:
    """``NAME`` or ``NAME:STRENGTH``, with the bounds of a LoRA's strength; ``ValueError`` says what is wrong."""
    return HypernetworkChoice(*_name_and_strength(text, "hypernetwork"))


def _name_and_strength(text: str, what: str) -> tuple[str, float]:
    name, sep, tail = text.rpartition(":")
    if not sep:
        name, tail = text, ""
    name = name.strip()
    if not name:
        raise ValueError(f"'{text}' has no {what} name (use NAME or NAME:STRENGTH)")
    if not tail.strip():
        if sep:
            raise ValueError(f"'{text}' has an empty strength after ':' (use NAME or NAME:STRENGTH)")
        return name, 1.0
    try:
        strength = float(tail)
    except ValueError:
        raise ValueError(f"'{text}': the strength '{tail}' is not a number (use NAME or NAME:STRENGTH)") from None
    if not math.isfinite(strength) or abs(strength) > LORA_STRENGTH_LIMIT:
        raise ValueError(
            f"'{text}': the strength must lie between -{LORA_STRENGTH_LIMIT:g} and {LORA_STRENGTH_LIMIT:g}"
        )
    return name, strength


def split_prompt(prompt: str) -> tuple[str, str]:
    """The positive and negative parts of a prompt in the AI Horde's ``positive###negative`` syntax."""
    positive, _sep, negative = prompt.partition(NEGATIVE_SEPARATOR)
    return positive, negative


def encode_image(path: Path, *, as_mask: bool = False) -> str:
    """A picture file as base64 WebP, as ``source_image`` / ``source_mask`` want it; ``InputFileError`` if unreadable.

    A mask becomes greyscale (white = repaint). A source keeps its transparency (outpainting reads it), so
    an image with alpha is stored losslessly; others as high-quality lossy WebP, to stay under upload limits.
    """
    what = "mask" if as_mask else "source image"
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.convert("L") if as_mask else _without_palette(opened)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputFileError(f"the {what} {path} is not an image that can be read ({exc})") from exc
    buffer = io.BytesIO()
    if as_mask or image.mode == "RGBA":
        image.save(buffer, format="WEBP", lossless=True)
    else:
        image.save(buffer, format="WEBP", quality=SOURCE_WEBP_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _without_palette(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


@dataclass(frozen=True)
class ImageRequest:
    """What ``openhorde generate`` asks for; ``to_wire()`` is the ``generate/async`` body."""

    prompt: str
    negative: str = ""
    models: tuple[str, ...] = ()
    width: int = 512
    height: int = 512
    steps: int = 30
    sampler: str = "k_euler_a"
    cfg_scale: float = 7.5
    seed: str | None = None
    count: int = 1
    karras: bool = False
    loras: tuple[LoraChoice, ...] = ()
    hypernetworks: tuple[HypernetworkChoice, ...] = ()
    denoising_strength: float | None = None
    source_image: str | None = None
    source_mask: str | None = None
    source_processing: SourceProcessing = "img2img"
    nsfw: bool = False
    censor_nsfw: bool = False
    post_processing: tuple[str, ...] = ()
    """Post-processor names, run by the worker in the horde's default order (face fixers, then upscaling)."""
    facefixer_strength: float | None = None
    control_type: str | None = None
    """ControlNet: the source image is then the control image (turned into a map by the worker's annotator)."""
    image_is_control: bool = False
    return_control_map: bool = False

    @property
    def full_prompt(self) -> str:
        """The prompt as sent: the negative prompt appended after ``###``."""
        return f"{self.prompt}{NEGATIVE_SEPARATOR}{self.negative}" if self.negative else self.prompt

    def params(self) -> dict[str, Any]:
        """The ``params`` object."""
        params: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "sampler_name": self.sampler,
            "cfg_scale": self.cfg_scale,
            "n": self.count,
            "karras": self.karras,
        }
        if self.seed is not None:
            params["seed"] = self.seed  # a string: the AI Horde hashes any text into a seed
        if self.loras:
            params["loras"] = [lora.to_wire() for lora in self.loras]
        if self.hypernetworks:
            params["hypernetworks"] = [hypernetwork.to_wire() for hypernetwork in self.hypernetworks]
        if self.denoising_strength is not None:
            params["denoising_strength"] = self.denoising_strength
        if self.post_processing:
            params["post_processing"] = list(self.post_processing)
        if self.facefixer_strength is not None:
            params["facefixer_strength"] = self.facefixer_strength
        if self.control_type is not None:
            params["control_type"] = self.control_type
            params["image_is_control"] = self.image_is_control
            params["return_control_map"] = self.return_control_map
        return params

    def to_wire(self) -> dict[str, Any]:
        """The whole ``POST /generate/async`` body."""
        body: dict[str, Any] = {
            "prompt": self.full_prompt,
            "params": self.params(),
            "models": list(self.models),
            "nsfw": self.nsfw,
            "censor_nsfw": self.censor_nsfw,
            "r2": True,
        }
        if self.source_image is not None:
            body["source_image"] = self.source_image
            body["source_processing"] = self.source_processing
        if self.source_mask is not None:
            body["source_mask"] = self.source_mask
        return body
