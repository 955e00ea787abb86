from pathlib import Path

import pytest
import torch
from PIL import Image

from openhorde.worker.postprocess.chain import MissingPostProcessor, PostProcessors

CPU = torch.device("cpu")


def test_only_the_wanted_post_processors_whose_files_exist_are_loaded(weights_dir: Path) -> None:
    loaded = PostProcessors.load(
        ["RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "strip_background", "GFPGAN"], weights_dir, CPU
    )

    # RealESRGAN_x4plus_anime_6B and GFPGAN have no file in the store: left out, the others still load.
    assert loaded.names == ["RealESRGAN_x2plus", "strip_background"]
    assert loaded.missing(["GFPGAN", "strip_background"]) == ["GFPGAN"]


def test_apply_runs_the_upscaler_before_removing_the_background(weights_dir: Path) -> None:
    loaded = PostProcessors.load(["RealESRGAN_x2plus", "strip_background"], weights_dir, CPU)
    image = Image.new("RGB", (16, 12), (200, 200, 200))

    result = loaded.apply(image, ["strip_background", "RealESRGAN_x2plus"], "facefixers_first", 1.0)

    assert result.size == (32, 24)
    assert result.mode == "RGBA"


def test_a_post_processor_that_is_not_loaded_is_refused(weights_dir: Path) -> None:
    loaded = PostProcessors.load(["RealESRGAN_x2plus"], weights_dir, CPU)

    with pytest.raises(MissingPostProcessor, match="CodeFormers"):
        loaded.apply(Image.new("RGB", (8, 8)), ["CodeFormers"])
