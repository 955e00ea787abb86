from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageChops

from openhorde.worker.postprocess.facefix import FaceDetector, FaceFixer
from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError

CPU = torch.device("cpu")


def _landscape() -> Image.Image:
    """A sky-and-hills picture with nothing in it a face detector could take for a face."""
    x = np.linspace(0, 1, 160)[None, :, None]
    y = np.linspace(0, 1, 120)[:, None, None]
    pixels = np.concatenate([80 + 100 * y + 0 * x, 120 + 60 * x + 0 * y, 200 - 120 * y + 0 * x], axis=2)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.mark.parametrize(("name", "fixture"), [("CodeFormers", "codeformer_file"), ("GFPGAN", "gfpgan_file")])
def test_the_reference_files_load_as_face_restorers(name: str, fixture: str, request: pytest.FixtureRequest) -> None:
    fixer = FaceFixer.load(name, request.getfixturevalue(fixture), CPU)

    assert fixer.descriptor.architecture.id == {"CodeFormers": "CodeFormer", "GFPGAN": "GFPGAN"}[name]
    assert fixer.descriptor.scale == 1


def test_an_image_without_a_face_comes_back_unchanged(codeformer_file: Path) -> None:
    fixer = FaceFixer.load("CodeFormers", codeformer_file, CPU)
    image = _landscape()

    assert FaceDetector()(image) == []
    result = fixer(image, strength=1.0)

    assert result.size == image.size
    assert ImageChops.difference(result, image).getbbox() is None


def test_an_upscaler_is_not_taken_for_a_face_restorer(weights_dir: Path) -> None:
    with pytest.raises(PostProcessorLoadError, match="not a face restorer"):
        FaceFixer.load("GFPGAN", weights_dir / "RealESRGAN_x4plus.pth", CPU)


@pytest.mark.generation  # one 512×512 pass of the real CodeFormer network on the CPU: about 30 s
def test_a_face_is_restored_in_place_and_the_rest_is_kept(codeformer_file: Path) -> None:
    fixer = FaceFixer.load("CodeFormers", codeformer_file, CPU)
    image = _landscape()
    rgba = image.convert("RGBA")
    rgba.putalpha(200)

    result = fixer.restore(rgba, [(60, 40, 32, 32)], strength=0.5)

    assert result.size == image.size
    assert result.mode == "RGBA"
    assert result.getchannel("A").getextrema() == (200, 200)
    changed = ImageChops.difference(result.convert("RGB"), image).getbbox()
    assert changed is not None  # random weights: the "restored" face differs
    left, top, right, bottom = changed
    # The crop is twice the face's box around its centre: (44, 24)–(108, 88); nothing outside it moves.
    assert left >= 44 and top >= 24 and right <= 108 and bottom <= 88
