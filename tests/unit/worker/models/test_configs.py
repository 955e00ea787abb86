"""The shipped per-baseline config folders describe the real models: parameter counts on the meta device."""

from __future__ import annotations

import json

import pytest
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from openhorde.worker.models.loader import CONFIGS_DIR, shipped_config_dir

# Published parameter counts of the released models.
SD15_UNET = 859_520_964
SD15_INPAINTING_UNET = 859_535_364  # conv_in takes 9 channels instead of 4
SD_VAE = 83_653_863
CLIP_L_TEXT = 123_060_480
SD21_UNET = 865_910_724
SD21_TEXT = 340_387_840
SDXL_UNET = 2_567_463_684
SDXL_TEXT_2 = 694_659_840

EXPECTED = {
    "sd1": {"unet": SD15_UNET, "vae": SD_VAE, "text_encoder": CLIP_L_TEXT},
    "sd1_inpainting": {"unet": SD15_INPAINTING_UNET, "vae": SD_VAE, "text_encoder": CLIP_L_TEXT},
    "sd2": {"unet": SD21_UNET, "vae": SD_VAE, "text_encoder": SD21_TEXT},
    "sdxl": {"unet": SDXL_UNET, "vae": SD_VAE, "text_encoder": CLIP_L_TEXT, "text_encoder_2": SDXL_TEXT_2},
}


def parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def build(folder: str, component: str) -> nn.Module:
    path = CONFIGS_DIR / folder / component
    with init_empty_weights():
        if component == "unet":
            return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(path))
        if component == "vae":
            return AutoencoderKL.from_config(AutoencoderKL.load_config(path))
        config = CLIPTextConfig.from_pretrained(path)
        cls = CLIPTextModelWithProjection if config.architectures == ["CLIPTextModelWithProjection"] else CLIPTextModel
        return cls(config)


@pytest.mark.parametrize(
    ("folder", "component", "count"),
    [(folder, component, count) for folder, counts in EXPECTED.items() for component, count in counts.items()],
)
def test_component_parameter_counts(folder: str, component: str, count: int) -> None:
    module = build(folder, component)
    assert next(module.parameters()).device.type == "meta"
    assert parameters(module) == count


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_every_folder_has_an_index_naming_its_components(folder: str) -> None:
    root = CONFIGS_DIR / folder
    index = json.loads((root / "model_index.json").read_text())
    components = {name for name, value in index.items() if isinstance(value, list) and value[0] is not None}
    assert {"unet", "vae", "text_encoder", "scheduler", "tokenizer"} <= components
    for name in components - {"tokenizer", "tokenizer_2"}:
        config = "scheduler_config.json" if name == "scheduler" else "config.json"
        assert (root / name / config).is_file(), name
    # No tokenizer files ship: the loader builds them offline.
    assert not (root / "tokenizer").exists()


def test_baseline_specific_settings() -> None:
    sd2_scheduler = json.loads((CONFIGS_DIR / "sd2" / "scheduler" / "scheduler_config.json").read_text())
    assert sd2_scheduler["prediction_type"] == "v_prediction"
    sd2_unet = json.loads((CONFIGS_DIR / "sd2" / "unet" / "config.json").read_text())
    assert sd2_unet["use_linear_projection"] and sd2_unet["cross_attention_dim"] == 1024
    sdxl_vae = json.loads((CONFIGS_DIR / "sdxl" / "vae" / "config.json").read_text())
    assert sdxl_vae["scaling_factor"] == 0.13025 and sdxl_vae["force_upcast"]
    sdxl_unet = json.loads((CONFIGS_DIR / "sdxl" / "unet" / "config.json").read_text())
    assert sdxl_unet["addition_embed_type"] == "text_time"


def test_shipped_config_lookup() -> None:
    assert shipped_config_dir("sd1") == CONFIGS_DIR / "sd1"
    assert shipped_config_dir("sd1", inpainting=True) == CONFIGS_DIR / "sd1_inpainting"
    assert shipped_config_dir("sdxl") == CONFIGS_DIR / "sdxl"
    assert shipped_config_dir("sdxl", inpainting=True) is None
