"""A request's source image and mask: read, checked and re-encoded before the request's transaction opens.

A source given as a URL is downloaded by the server, so it may take as long as the remote server makes it
(up to ``source_fetch_timeout_seconds``). That wait must hold nothing: no database connection, no
transaction, no event loop time. So ``prepare`` runs before the unit of work that queues the request, the
download goes through the guarded client (public addresses only, one deadline, a size cap) and the Pillow
work runs in a worker thread. ``save`` then writes the finished WebP files as blobs, still outside the
transaction; ``discard`` removes them again if the request is refused after all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from PIL import Image

from openhorde.domain import images
from openhorde.domain.context import HordeContext
from openhorde.errors import (
    InpaintingMissingMask,
    SourceImageSizeExceeded,
    SourceImageUrlInvalid,
    SourceMaskUnnecessary,
)
from openhorde.net.addresses import AddressNotAllowed, HostNotFound
from openhorde.net.fetch import DownloadFailed, DownloadTooLarge, download

PAINTING = ("inpainting", "outpainting")


@dataclass(frozen=True)
class SourceImages:
    """A request's checked source image and mask as WebP bytes (``None`` when not given)."""

    source: bytes | None = None
    mask: bytes | None = None


@dataclass(frozen=True)
class SourceKeys:
    """Where a request's source image and mask are stored in the blob store."""

    source: str | None = None
    mask: str | None = None

    def keys(self) -> list[str]:
        """The keys in use."""
        return [key for key in (self.source, self.mask) if key is not None]


NO_SOURCES = SourceImages()
NO_KEYS = SourceKeys()


async def _raw_bytes(ctx: HordeContext, data: str, what: str) -> bytes:
    """The bytes of a client's image: downloaded when it is an http(s) URL, else decoded from base64."""
    max_bytes = ctx.settings.blobs.max_upload_bytes
    if not data.startswith(("http://", "https://")):
        return await asyncio.to_thread(images.decode_base64, data, what, max_bytes)
    deadline = ctx.settings.limits.source_fetch_timeout_seconds
    try:
        return await download(ctx.outbound, data, max_bytes, deadline)
    except AddressNotAllowed as exc:
        raise SourceImageUrlInvalid(
            f"The {what} URL is refused: {exc}; this horde fetches images from public addresses only."
        ) from exc
    except HostNotFound as exc:
        raise SourceImageUrlInvalid(f"The {what} URL's host {exc.host} was not found.") from exc
    except DownloadTooLarge as exc:
        raise SourceImageSizeExceeded(f"The {what} is larger than {max_bytes} bytes.") from exc
    except DownloadFailed as exc:
        raise SourceImageUrlInvalid(f"The {what} could not be downloaded: {exc}.") from exc


def _encode(source_raw: bytes, mask_raw: bytes | None, processing: str, max_pixels: int) -> SourceImages:
    """Decode, check and re-encode source and mask (Pillow work: runs in a worker thread)."""
    source: Image.Image = images.open_image(source_raw, "source image", max_pixels)
    mask = images.open_image(mask_raw, "source mask", max_pixels) if mask_raw is not None else None
    if processing in PAINTING and mask is None and not images.has_alpha(source):
        raise InpaintingMissingMask("Inpainting needs a source_mask or a source image with an alpha channel.")
    return SourceImages(
        source=images.to_webp(source),
        mask=images.to_webp(mask, lossless=True) if mask is not None else None,
    )


async def prepare(
    ctx: HordeContext, source_image: str | None, source_mask: str | None, processing: str
) -> SourceImages:
    """Read and check a request's source image and mask; raises ``ImageValidationFailed`` (400) if unusable."""
    if source_image is None:
        if source_mask is not None:
            raise SourceMaskUnnecessary()
        return NO_SOURCES
    reads = [_raw_bytes(ctx, source_image, "source image")]
    if source_mask is not None:
        reads.append(_raw_bytes(ctx, source_mask, "source mask"))
    raw = await asyncio.gather(*reads)
    mask_raw = raw[1] if source_mask is not None else None
    return await asyncio.to_thread(_encode, raw[0], mask_raw, processing, ctx.settings.limits.max_source_pixels)


async def save(ctx: HordeContext, sources: SourceImages, request_id: str) -> SourceKeys:
    """Write the prepared images as blobs under keys of ``request_id``."""
    if sources.source is None:
        return NO_KEYS
    source_key = f"sources/{request_id}_src.webp"
    await ctx.blobs.put(source_key, sources.source)
    if sources.mask is None:
        return SourceKeys(source=source_key)
    mask_key = f"sources/{request_id}_msk.webp"
    await ctx.blobs.put(mask_key, sources.mask)
    return SourceKeys(source=source_key, mask=mask_key)


async def discard(ctx: HordeContext, keys: SourceKeys) -> None:
    """Remove stored images of a request that was not queued after all."""
    if keys.keys():
        await ctx.blobs.delete_many(keys.keys())
