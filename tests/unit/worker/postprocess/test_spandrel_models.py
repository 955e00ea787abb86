import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError, import_spandrel, load_descriptor


def test_spandrel_imports_with_its_extra_architectures_and_leaves_no_torchvision_behind() -> None:
    spandrel = import_spandrel()

    ids = {support.architecture.id for support in spandrel.MAIN_REGISTRY.architectures()}
    assert {"ESRGAN", "GFPGAN", "CodeFormer"} <= ids
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules


def test_a_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(PostProcessorLoadError, match="no such file"):
        load_descriptor(tmp_path / "absent.pth", torch.device("cpu"))
