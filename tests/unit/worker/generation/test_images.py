"""Source and mask preparation, compositing, censor images, tiling switch, device choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from openhorde.worker.generation import images
from openhorde.worker.generation.devices import pick_device, pick_dtype, resolve_placement
from openhorde.worker.generation.tiling import pipeline_convolutions, seamless_tiling
from openhorde.worker.models.tiny import build_tiny_pipeline


def _rgba_with_hole() -> Image.Image:
    image = Image.new("RGBA", (32, 32), (200, 10, 10, 255))
    image.paste((0, 0, 0, 0), (8, 8, 24, 24))
    return image


def test_the_mask_comes_from_transparency() -> None:
    mask = images.mask_from_alpha(_rgba_with_hole())
    assert mask is not None
    values = np.asarray(mask)
    assert values[16, 16] == 255 and values[0, 0] == 0
    assert images.mask_from_alpha(Image.new("RGB", (8, 8))) is None
    assert images.mask_from_alpha(Image.new("RGBA", (8, 8), (1, 2, 3, 255))) is None


def test_a_sent_mask_wins_and_is_resized() -> None:
    sent = Image.new("L", (16, 16), 255)
    mask = images.resolve_mask(_rgba_with_hole(), sent, 64, 48)
    assert mask is not None and mask.size == (64, 48) and np.asarray(mask).min() == 255
    transparent_mask = Image.new("RGBA", (16, 16), (255, 255, 255, 0))
    assert np.asarray(images.fit_mask(transparent_mask, 16, 16)).max() == 0


def test_sources_are_fitted_and_flattened() -> None:
    fitted = images.fit_source(_rgba_with_hole(), 64, 64)
    assert fitted.size == (64, 64) and fitted.mode == "RGBA"
    flat = images.flatten(fitted)
    assert flat.mode == "RGB" and flat.getpixel((32, 32)) == images.NEUTRAL_GREY
    assert images.fit_source(Image.new("L", (10, 10)), 16, 8).mode == "RGB"


def test_composite_keeps_every_unmasked_pixel() -> None:
    source = Image.new("RGB", (32, 32), (10, 200, 10))
    generated = Image.new("RGB", (32, 32), (250, 0, 250))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    result = np.asarray(images.composite(source, generated, mask))
    outside = np.asarray(mask) == 0
    assert (result[outside] == (10, 200, 10)).all()
    assert tuple(result[16, 16]) == (250, 0, 250)
    assert 10 < result[8, 16][0] < 250  # feathered just inside the edge


def test_the_censor_image_has_the_requested_size() -> None:
    for size in ((64, 64), (512, 768), (32, 16)):
        card = images.censor_image(*size)
        assert card.size == size and card.mode == "RGB"
    assert np.asarray(images.censor_image(256, 256)).std() > 0


def test_noise_stand_in_is_seeded() -> None:
    assert images.noise_image(8, 8, 1).tobytes() == images.noise_image(8, 8, 1).tobytes()
    assert images.noise_image(8, 8, 1).tobytes() != images.noise_image(8, 8, 2).tobytes()


def test_tiling_switches_padding_and_restores_it_on_error() -> None:
    convolutions = pipeline_convolutions(build_tiny_pipeline())
    assert convolutions
    with pytest.raises(RuntimeError), seamless_tiling(convolutions):
        assert all(conv.padding_mode == "circular" for conv in convolutions)
        raise RuntimeError("boom")
    assert all(conv.padding_mode == "zeros" for conv in convolutions)


def test_device_and_dtype_choice() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("mps")) == torch.float16
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        pick_dtype(torch.device("cpu"), "float99")
    placement = resolve_placement("cpu")
    assert placement.device.type == "cpu" and placement.dtype == torch.float32 and not placement.is_cuda
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA"):
            pick_device("cuda:1")
