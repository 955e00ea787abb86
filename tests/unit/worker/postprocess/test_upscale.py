from pathlib import Path

import pytest
import torch
from PIL import Image

from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError
from openhorde.worker.postprocess.upscale import Upscaler
from tests.unit.worker.postprocess import weights

CPU = torch.device("cpu")


def _image(width: int, height: int) -> Image.Image:
    generator = torch.Generator().manual_seed(7)
    pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


@pytest.mark.parametrize(
    ("name", "scale"),
    [("RealESRGAN_x4plus", 4), ("RealESRGAN_x2plus", 2), ("NMKD_Siax", 4), ("4x_AnimeSharp", 4)],
)
def test_the_reference_files_load_as_upscalers_of_their_scale(weights_dir: Path, name: str, scale: int) -> None:
    upscaler = Upscaler.load(name, weights_dir / f"{name}.pth", CPU)

    result = upscaler(_image(24, 16))

    assert upscaler.descriptor.architecture.id == "ESRGAN"
    assert upscaler.scale == scale
    assert result.size == (24 * scale, 16 * scale)
    assert result.mode == "RGB"


def test_safetensors_weights_load_too(tmp_path: Path) -> None:
    path = weights.write_safetensors(tmp_path / "upscaler.safetensors", weights.realesrgan_state(4))

    assert Upscaler.load("RealESRGAN_x4plus", path, CPU).scale == 4


@pytest.mark.parametrize("name", ["RealESRGAN_x4plus", "RealESRGAN_x2plus"])
def test_tiled_output_equals_the_untiled_output(weights_dir: Path, name: str) -> None:
    upscaler = Upscaler.load(name, weights_dir / f"{name}.pth", CPU)
    tensor = torch.rand(1, 3, 40, 28, generator=torch.Generator().manual_seed(3))
    whole = upscaler.run(tensor)

    upscaler.tile, upscaler.overlap = 16, 8
    tiled = upscaler.run(tensor)

    assert tiled.shape == whole.shape == (1, 3, 40 * upscaler.scale, 28 * upscaler.scale)
    # One RRDB block sees a few pixels around each one; 8 pixels of context cover it.
    assert torch.allclose(tiled, whole, atol=1e-3)


def test_an_alpha_channel_is_scaled_alongside(weights_dir: Path) -> None:
    upscaler = Upscaler.load("RealESRGAN_x2plus", weights_dir / "RealESRGAN_x2plus.pth", CPU)
    image = _image(16, 16).convert("RGBA")
    image.putalpha(Image.new("L", (16, 16), 90))

    result = upscaler(image)

    assert result.mode == "RGBA"
    assert result.size == (32, 32)
    assert result.getchannel("A").getextrema() == (90, 90)


def test_a_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    torch.save({"something": torch.zeros(3)}, path)

    with pytest.raises(PostProcessorLoadError, match=r"broken\.pth"):
        Upscaler.load("RealESRGAN_x4plus", path, CPU)
