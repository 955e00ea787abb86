from pathlib import Path

import pytest
import torch
from PIL import Image

from openhorde.worker.postprocess.background import BackgroundRemover
from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError

CPU = torch.device("cpu")


def test_strip_background_gives_rgba_with_the_dark_half_removed(weights_dir: Path) -> None:
    remover = BackgroundRemover.load(weights_dir / "u2net.onnx", CPU)
    image = Image.new("RGB", (64, 48), (10, 10, 10))
    image.paste((240, 240, 240), (0, 0, 32, 48))

    result = remover(image)

    assert result.mode == "RGBA"
    assert result.size == (64, 48)
    alpha = result.getchannel("A")
    assert alpha.getpixel((8, 24)) > 200  # the bright half is the "subject" the mask keeps
    assert alpha.getpixel((56, 24)) < 50


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PostProcessorLoadError, match="no such file"):
        BackgroundRemover.load(tmp_path / "u2net.onnx", CPU)
