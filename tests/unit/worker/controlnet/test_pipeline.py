"""What a worker's ControlNet support serves: every type of a baseline, or that baseline is not advertised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from openhorde.model_reference import loads
from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.pipeline import ControlNetSupport, ControlNetUnavailable
from openhorde.worker.models.store import ModelStore
from openhorde.worker.models.tiny import build_tiny_pipeline

from . import weights

pytestmark = pytest.mark.generation
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    weights.write_store(root, build_tiny_pipeline().unet)
    return root


def prepare(root: Path, baselines: dict[str, str]) -> ControlNetSupport:
    reference = loads((root / "controlnet.json").read_bytes())
    return ControlNetSupport.prepare(reference, ModelStore(root), baselines, CPU)


def test_with_every_file_a_baseline_is_complete_and_each_model_finds_its_files(store: Path) -> None:
    support = prepare(store, {"tiny": "sd1", "big": "sdxl"})

    assert support.types("sd1") == list(names.CONTROL_TYPES)
    assert support.complete_baselines() == ("sd1",)
    assert support.file_for("tiny", "hough") == store / "controlnet" / "diff_control_sd15_hough_fp16.safetensors"
    with pytest.raises(ControlNetUnavailable, match="big"):
        support.file_for("big", "canny")  # the reference has no SDXL ControlNets for the control types


def test_one_missing_controlnet_file_makes_the_baseline_incomplete(store: Path, tmp_path: Path) -> None:
    for path in (store / "controlnet").glob("*.safetensors"):
        if "depth" not in path.name:
            (tmp_path / "controlnet").mkdir(exist_ok=True)
            (tmp_path / "controlnet" / path.name).symlink_to(path)
    (tmp_path / "controlnet.json").symlink_to(store / "controlnet.json")
    (tmp_path / "controlnet" / "annotators").symlink_to(store / "controlnet" / "annotators")

    support = prepare(tmp_path, {"tiny": "sd1"})

    assert "depth" not in support.types("sd1") and "normal" in support.types("sd1")
    assert support.complete_baselines() == ()


def test_without_a_readable_reference_nothing_is_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from openhorde.worker.controlnet.pipeline import load_controlnet_support

    broken = tmp_path / "controlnet.json"
    broken.write_text("{not json")

    support = load_controlnet_support(str(broken), ModelStore(tmp_path), {"tiny": "sd1"}, CPU)

    assert support.complete_baselines() == () and support.files == {}
    assert "ControlNet is not served" in caplog.text


def test_an_existing_source_can_already_be_the_control_map(store: Path) -> None:
    from PIL import Image

    support = prepare(store, {"tiny": "sd1"})
    source = Image.new("RGB", (32, 32), (200, 10, 10))

    assert support.control_map("canny", source, 64, 48, is_control=True).getpixel((5, 5)) == (200, 10, 10)
    assert support.control_map("canny", source, 64, 48, is_control=False).getpixel((5, 5)) == (0, 0, 0)
