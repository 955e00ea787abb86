"""ControlNet files in the original layout, kohya's difference modules included, load onto the base model's UNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from safetensors.torch import load_file, save_file

from openhorde.worker.controlnet.weights import (
    DIFFERENCE_KEY,
    ControlNetLoadError,
    controlnet_to_ldm,
    load_controlnet,
)
from openhorde.worker.models.tiny import build_tiny_pipeline, tiny_sdxl_unet

from .weights import tiny_controlnet, write_controlnet

pytestmark = pytest.mark.generation


@pytest.fixture(scope="module")
def unet() -> object:
    return build_tiny_pipeline().unet


def test_the_original_layout_is_the_one_diffusers_reads(unet: object) -> None:
    """SD's hint encoder (four levels) written our way converts back with diffusers' own converter unchanged."""
    model = ControlNetModel.from_unet(unet)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter)
    ldm = controlnet_to_ldm(model)
    assert "control_model.input_hint_block.14.weight" in ldm and "control_model.middle_block_out.0.bias" in ldm

    converted = convert_controlnet_checkpoint(ldm, dict(model.config))

    assert converted.keys() == model.state_dict().keys()
    assert all(torch.equal(converted[key], value) for key, value in model.state_dict().items())


def test_a_difference_module_loads_as_the_controlnet_it_was_made_from(unet: object, tmp_path: Path) -> None:
    original = tiny_controlnet(unet, seed=3)
    path = write_controlnet(tmp_path / "diff_control_sd15_canny_fp16.safetensors", unet, seed=3)
    stored = load_file(str(path))
    assert DIFFERENCE_KEY in stored
    # The file holds differences: its encoder weights are not the ControlNet's own.
    assert not torch.equal(stored["control_model.input_blocks.0.0.weight"], original.state_dict()["conv_in.weight"])

    loaded = load_controlnet(path, unet)

    assert loaded.config.conditioning_embedding_out_channels == (8, 16)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=1e-6, rtol=0)


def test_a_difference_module_adds_the_base_weights_under_the_loras_a_job_left_loaded(tmp_path: Path) -> None:
    from tests.adapter_files import make_lora

    pipe = build_tiny_pipeline()
    original = tiny_controlnet(pipe.unet, seed=3)
    path = write_controlnet(tmp_path / "diff.safetensors", pipe.unet, seed=3)
    pipe.load_lora_weights(str(make_lora(tmp_path / "lora", seed=1)), adapter_name="shiny")
    assert any(".base_layer." in key for key in pipe.unet.state_dict())

    loaded = load_controlnet(path, pipe.unet)

    for key, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=1e-6, rtol=0)


def test_a_file_in_the_original_layout_without_its_prefix_loads_too(unet: object, tmp_path: Path) -> None:
    original = tiny_controlnet(unet, seed=6)
    path = tmp_path / "control_openpose_fp21.safetensors"
    unprefixed = {key.removeprefix("control_model."): value for key, value in controlnet_to_ldm(original).items()}
    save_file(unprefixed, str(path))

    loaded = load_controlnet(path, unet)

    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in original.state_dict().items())


def test_a_file_in_diffusers_layout_loads_as_it_is(unet: object, tmp_path: Path) -> None:
    original = tiny_controlnet(unet, seed=4)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({key: value.contiguous() for key, value in original.state_dict().items()}, str(path))

    loaded = load_controlnet(path, unet)

    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in original.state_dict().items())


def test_a_controlnet_for_another_unet_is_refused(unet: object, tmp_path: Path) -> None:
    path = write_controlnet(tmp_path / "control.safetensors", unet)

    with pytest.raises(ControlNetLoadError, match="does not fit"):
        load_controlnet(path, tiny_sdxl_unet())


def test_a_file_that_is_not_a_controlnet_is_refused(unet: object, tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"model.diffusion_model.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(path))

    with pytest.raises(ControlNetLoadError, match="not a ControlNet"):
        load_controlnet(path, unet)
