"""The one place that prices an image.

``image_price`` is what one image is worth: the worker's reward. It models the seconds an
image takes, calibrated to the AI Horde's kudos model (512×512, 50 steps, k_euler costs
11.00; 512×512, 30 steps, k_euler_a about 7.6; 1024×1024, 30 steps about 20.6)::

    price = 2.525 × r^0.82 + 0.1695 × accurate_steps × r^0.66        (r = width × height / 512²)
          × 1.61 with hires_fix  × 1.8 with ControlNet  × 1.04 for img2img/inpainting
          + post-processors (2.8 × r^0.82 per upscaler, 1.0 × r^0.82 per face fixer, 0.5 × r for strip_background)
          + 3 per LoRA + 1 if any textual inversion

``image_charge`` is what the requester pays per delivered image: the price × 1.3 with a
source image, × 1.05 per upscaler, + 1 horde tax, then × 1.2 when slow workers are refused
and × 1.1 with a worker block-list (the reference's rules). A dry run returns
``request_charge`` = ``image_charge × n``: exactly what the ledger debits once all images
are delivered (censored images are free, and nobody pays below their floor of 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from openhorde.domain.post_processors import FACE_FIXERS, UPSCALERS

SECOND_ORDER_SAMPLERS = frozenset({"k_heun", "k_dpm_2", "k_dpm_2_a", "k_dpmpp_2s_a", "k_dpmpp_sde"})
"""Samplers that evaluate the model twice per step."""
ADAPTIVE_SAMPLER_STEPS = 40
"""``k_dpm_adaptive`` picks its own step count; it is priced as this many."""


BASE_OVERHEAD_KUDOS = 2.525
PER_STEP_KUDOS = 0.1695
OVERHEAD_PIXEL_EXPONENT = 0.82
STEP_PIXEL_EXPONENT = 0.66
HIRES_FIX_FACTOR = 1.61
CONTROLNET_FACTOR = 1.8
SOURCE_IMAGE_FACTOR = 1.04
UPSCALER_KUDOS = 2.8
FACE_FIXER_KUDOS = 1.0
STRIP_BACKGROUND_KUDOS = 0.5
LORA_KUDOS = 3.0
TEXTUAL_INVERSION_KUDOS = 1.0

SOURCE_IMAGE_CHARGE_FACTOR = 1.3
UPSCALER_CHARGE_FACTOR = 1.05
HORDE_TAX_KUDOS = 1.0
FAST_WORKERS_ONLY_FACTOR = 1.2
WORKER_BLOCKLIST_FACTOR = 1.1


def accurate_steps(steps: int, sampler_name: str) -> int:
    """Model evaluations an image needs: steps, doubled for second-order samplers."""
    if sampler_name == "k_dpm_adaptive":
        return ADAPTIVE_SAMPLER_STEPS
    return steps * 2 if sampler_name in SECOND_ORDER_SAMPLERS else steps


@dataclass(frozen=True)
class PriceInputs:
    """The settings of one image that change its price."""

    width: int = 512
    height: int = 512
    steps: int = 30
    sampler_name: str = "k_euler_a"
    hires_fix: bool = False
    controlnet: bool = False
    source_image: bool = False
    post_processing: Sequence[str] = field(default_factory=tuple)
    loras: int = 0
    textual_inversions: bool = False
    slow_workers: bool = True
    worker_blocklist: bool = False


def image_price(inputs: PriceInputs) -> float:
    """Kudos one image is worth (the worker's reward), rounded to hundredths."""
    r = inputs.width * inputs.height / (512 * 512)
    steps = accurate_steps(inputs.steps, inputs.sampler_name)
    price = BASE_OVERHEAD_KUDOS * r**OVERHEAD_PIXEL_EXPONENT + PER_STEP_KUDOS * steps * r**STEP_PIXEL_EXPONENT
    if inputs.hires_fix:
        price *= HIRES_FIX_FACTOR
    if inputs.controlnet:
        price *= CONTROLNET_FACTOR
    if inputs.source_image:
        price *= SOURCE_IMAGE_FACTOR
    for name in inputs.post_processing:
        if name in UPSCALERS:
            price += UPSCALER_KUDOS * r**OVERHEAD_PIXEL_EXPONENT
        elif name in FACE_FIXERS:
            price += FACE_FIXER_KUDOS * r**OVERHEAD_PIXEL_EXPONENT
        else:
            price += STRIP_BACKGROUND_KUDOS * r
    price += LORA_KUDOS * inputs.loras
    if inputs.textual_inversions:
        price += TEXTUAL_INVERSION_KUDOS
    return round(float(price), 2)


def image_charge(inputs: PriceInputs) -> float:
    """Kudos the requester pays for one delivered image, rounded to hundredths."""
    charge = image_price(inputs)
    if inputs.source_image:
        charge *= SOURCE_IMAGE_CHARGE_FACTOR
    for name in inputs.post_processing:
        if name in UPSCALERS:
            charge *= UPSCALER_CHARGE_FACTOR
    charge += HORDE_TAX_KUDOS
    if not inputs.slow_workers:
        charge *= FAST_WORKERS_ONLY_FACTOR
    if inputs.worker_blocklist:
        charge *= WORKER_BLOCKLIST_FACTOR
    return round(charge, 2)


def request_charge(inputs: PriceInputs, n: int) -> float:
    """Kudos a request for ``n`` images costs once all are delivered (the dry-run price)."""
    return round(image_charge(inputs) * n, 2)
