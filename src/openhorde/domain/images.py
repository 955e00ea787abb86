"""Checking images: source images and masks from clients, results uploaded by workers.

Every image is opened with Pillow after checking its declared size, so a decompression
bomb is refused before its pixels are decoded; it is then re-encoded as WebP. A worker's
result that is WebP already is kept as sent once its container and size are checked: its pixels
are not decoded (see ``check_result_upload``). These functions are CPU work: async callers run
them in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from openhorde.errors import (
    ImageValidationFailed,
    PayloadTooLarge,
    SourceImageResolutionExceeded,
    SourceImageSizeExceeded,
    SourceImageUnreadable,
)

WEBP_QUALITY = 95


def open_image(raw: bytes, what: str, max_pixels: int, undecoded_format: str | None = None) -> Image.Image:
    """Decode ``raw`` as an image no larger than ``max_pixels``, or raise ``ImageValidationFailed``; an image of
    ``undecoded_format`` has only its header read (its format and size), not its pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            width, height = image.size
            if width * height > max_pixels:
                raise SourceImageResolutionExceeded(
                    f"The {what} is {width}x{height}; at most {max_pixels} pixels are accepted."
                )
            if image.format != undecoded_format:
                image.load()
    except ImageValidationFailed:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise SourceImageUnreadable(f"The {what} is not a readable image.") from exc
    return image


def to_webp(image: Image.Image, lossless: bool = False) -> bytes:
    """The image encoded as WebP (RGBA kept when it has transparency)."""
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format="WEBP", quality=WEBP_QUALITY, lossless=lossless)
    return buffer.getvalue()


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries an alpha channel that can act as an inpainting mask."""
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def decode_base64(data: str, what: str, max_bytes: int) -> bytes:
    """The bytes of a base64 string (a ``data:`` URL prefix is allowed)."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    if len(payload) * 3 // 4 > max_bytes:
        raise SourceImageSizeExceeded(f"The {what} is larger than {max_bytes} bytes.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SourceImageUnreadable(f"The {what} is not valid base64.") from exc


def check_result_upload(raw: bytes, max_bytes: int, max_pixels: int) -> bytes:
    """A worker's uploaded image as WebP bytes; the upload must be an image.

    A WebP is kept as sent once Pillow has read its container (the RIFF chunks, the format, the size): decoding
    its pixels cost 10-20 ms of CPU for a 512x512 result and over 60 ms for 1024x1024, more than everything else
    the server does for a job, and told clients nothing more (a worker can send a valid image of anything; the
    AI Horde's workers upload straight to object storage, unchecked). Any other format is decoded and re-encoded."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"Uploads are limited to {max_bytes} bytes.")
    image = open_image(raw, "uploaded image", max_pixels, undecoded_format="WEBP")
    return raw if image.format == "WEBP" else to_webp(image)
