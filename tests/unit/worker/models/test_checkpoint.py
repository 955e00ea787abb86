"""The LDM single-file layout we write, checked against diffusers' own LDM → diffusers converters.

Full-size SD 1.5 and SDXL models are built on the meta device (no weights), converted to LDM keys by
our code and back by diffusers' ``convert_ldm_*_checkpoint``; every key and shape must come back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)
from safetensors.torch import load_file

from openhorde.worker.models.checkpoint import (
    export_tiny_model,
    pipeline_to_ldm,
    text_encoder_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
from openhorde.worker.models.loader import CONFIGS_DIR
from openhorde.worker.models.tiny import build_tiny_pipeline, tiny_unet

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = pytest.mark.generation


def meta_unet(baseline: str) -> UNet2DConditionModel:
    with init_empty_weights():
        return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS_DIR / baseline / "unet"))


def meta_vae(baseline: str) -> AutoencoderKL:
    with init_empty_weights():
        return AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS_DIR / baseline / "vae"))


def assert_same_layout(original: dict[str, torch.Tensor], returned: dict[str, torch.Tensor]) -> None:
    assert sorted(returned) == sorted(original)
    assert all(returned[key].shape == original[key].shape for key in original)


@pytest.mark.parametrize("baseline", ["sd1", "sd1_inpainting", "sd2", "sdxl"])
def test_unet_keys_survive_diffusers_conversion_back(baseline: str) -> None:
    unet = meta_unet(baseline)
    state = unet.state_dict()
    ldm = unet_to_ldm(state, unet.config)
    assert_same_layout(state, convert_ldm_unet_checkpoint(ldm, dict(unet.config)))


def test_sd15_unet_keys_are_the_original_ones() -> None:
    unet = meta_unet("sd1")
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    for key in (
        "time_embed.0.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.1.proj_in.weight",
        "input_blocks.3.0.op.weight",
        "input_blocks.11.0.out_layers.3.weight",
        "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "middle_block.2.emb_layers.1.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "output_blocks.11.0.skip_connection.weight",
        "out.2.bias",
    ):
        assert "model.diffusion_model." + key in ldm, key
    assert len(ldm) == len(unet.state_dict())
    # diffusers recognises the result as an SD 1 checkpoint from these keys.
    assert infer_diffusers_model_type(ldm) == "v1"


def test_sdxl_unet_keeps_its_size_conditioning() -> None:
    unet = meta_unet("sdxl")
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    assert "model.diffusion_model.label_emb.0.0.weight" in ldm
    assert "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.ff.net.2.weight" in ldm


@pytest.mark.parametrize("baseline", ["sd1", "sdxl"])
def test_vae_keys_survive_diffusers_conversion_back(baseline: str) -> None:
    vae = meta_vae(baseline)
    state = vae.state_dict()
    ldm = vae_to_ldm(state, vae.config)
    # LDM numbers decoder levels like the encoder's (0 = full resolution): up.3 runs first, 512→512, no shortcut.
    assert "first_stage_model.decoder.up.3.block.0.nin_shortcut.weight" not in ldm
    assert "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight" in ldm  # 256→128
    assert "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight" in ldm
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert "first_stage_model.decoder.norm_out.weight" in ldm
    assert_same_layout(state, convert_ldm_vae_checkpoint(ldm, dict(vae.config)))


def test_the_text_encoder_keys_get_the_text_model_level_with_or_without_it() -> None:
    weight = torch.zeros(2)
    flat = text_encoder_to_ldm({"embeddings.position_embedding.weight": weight})
    nested = text_encoder_to_ldm({"text_model.embeddings.position_embedding.weight": weight})
    expected = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
    assert list(flat) == list(nested) == [expected]
    assert list(convert_ldm_clip_checkpoint(flat)) == ["text_model.embeddings.position_embedding.weight"]


def test_the_tiny_pipeline_converts_completely_and_back() -> None:
    pipe = build_tiny_pipeline()
    ldm = pipeline_to_ldm(pipe)
    expected = sum(len(getattr(pipe, name).state_dict()) for name in ("unet", "vae", "text_encoder"))
    assert len(ldm) == expected
    # The tiny UNet has two levels, the first without attention: its upsampler sits after the attention.
    assert "model.diffusion_model.output_blocks.2.2.conv.weight" in ldm
    unet_back = convert_ldm_unet_checkpoint(ldm, dict(pipe.unet.config))
    state = pipe.unet.state_dict()
    assert all(torch.equal(unet_back[key], state[key]) for key in state)


def test_an_unsupported_block_layout_is_refused() -> None:
    unet = tiny_unet()
    config = {**unet.config, "down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D"]}
    with pytest.raises(ValueError, match="SimpleCrossAttnDownBlock2D"):
        unet_to_ldm(unet.state_dict(), config)
    with pytest.raises(ValueError, match="no place for"):
        unet_to_ldm({**unet.state_dict(), "extra.weight": torch.zeros(1)}, unet.config)


def test_export_tiny_model_writes_a_checkpoint_and_a_config_folder(tmp_path: Path) -> None:
    checkpoint, config_dir = export_tiny_model(tmp_path)
    assert checkpoint == tmp_path / "openhorde-tiny.safetensors"
    assert len(load_file(checkpoint)) == len(pipeline_to_ldm(build_tiny_pipeline()))
    files = sorted(path.relative_to(config_dir).as_posix() for path in config_dir.rglob("*.json"))
    assert files == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "unet/config.json",
        "vae/config.json",
    ]
    assert not list(config_dir.rglob("*.safetensors"))
    index = json.loads((config_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]

    _, inpainting_config = export_tiny_model(tmp_path, inpainting=True)
    index = json.loads((inpainting_config / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    assert json.loads((inpainting_config / "unet" / "config.json").read_text())["in_channels"] == 9
