"""A worker's result: WebP kept as sent after a look at its container, anything else decoded and re-encoded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from openhorde.domain.images import check_result_upload
from openhorde.errors import PayloadTooLarge, SourceImageResolutionExceeded, SourceImageUnreadable

LIMIT_BYTES = 10_000_000
LIMIT_PIXELS = 512 * 512


def encoded(side: int, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 60).convert("RGB").save(buffer, format=kind)
    return buffer.getvalue()


def test_a_webp_is_kept_byte_for_byte() -> None:
    webp = encoded(256, "WEBP")
    assert check_result_upload(webp, LIMIT_BYTES, LIMIT_PIXELS) == webp


def test_another_format_becomes_webp_of_the_same_size() -> None:
    converted = check_result_upload(encoded(128, "PNG"), LIMIT_BYTES, LIMIT_PIXELS)
    image = Image.open(io.BytesIO(converted))
    assert image.format == "WEBP" and image.size == (128, 128)


@pytest.mark.parametrize("kind", ["WEBP", "PNG"])
def test_an_image_larger_than_allowed_is_refused_by_its_header(kind: str) -> None:
    with pytest.raises(SourceImageResolutionExceeded):
        check_result_upload(encoded(600, kind), LIMIT_BYTES, LIMIT_PIXELS)


def test_a_webp_cut_short_or_not_an_image_is_refused() -> None:
    webp = encoded(256, "WEBP")
    for raw in (webp[: len(webp) // 2], webp[:40], b"<html>not an image</html>"):
        with pytest.raises(SourceImageUnreadable):
            check_result_upload(raw, LIMIT_BYTES, LIMIT_PIXELS)


def test_an_upload_over_the_byte_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(PayloadTooLarge):
        check_result_upload(encoded(64, "WEBP"), 10, LIMIT_PIXELS)
