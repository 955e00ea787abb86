"""Loading pipelines from catalogue entries: the tiny model round-trips through a checkpoint file and a folder."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
from PIL import Image

from openhorde.worker.models.catalogue import TINY_ENTRY, ModelEntry
from openhorde.worker.models.checkpoint import export_tiny_model, save_folder
from openhorde.worker.models.loader import load_pipeline, pipeline_class, tokenizers_for
from openhorde.worker.models.store import ChecksumMismatch, ModelStore, ModelUnavailable
from openhorde.worker.models.tiny import build_tiny_pipeline

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = pytest.mark.generation

CPU = torch.device("cpu")
COMPONENTS = ("unet", "vae", "text_encoder")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the tiny model as a checkpoint (+ config), its inpainting variant, and a folder copy."""
    root = tmp_path_factory.mktemp("store")
    export_tiny_model(root)
    export_tiny_model(root, inpainting=True)
    save_folder(build_tiny_pipeline(), root / "tiny-folder")
    return root


@pytest.fixture(scope="module")
def reference_image() -> np.ndarray:
    """What the tiny model generates before any save and load."""
    return generate(build_tiny_pipeline())


def generate(pipe: DiffusionPipeline) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a cat", num_inference_steps=2, width=64, height=64, generator=torch.Generator().manual_seed(7))
    return np.asarray(image.images[0]).astype(np.int16)


def inpaint(pipe: DiffusionPipeline) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    source = Image.new("RGB", (64, 64), (120, 60, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    image = pipe(
        "a cat",
        image=source,
        mask_image=mask,
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(7),
    )
    return np.asarray(image.images[0]).astype(np.int16)


def assert_same_weights(loaded: DiffusionPipeline, original: DiffusionPipeline) -> None:
    for name in COMPONENTS:
        left, right = getattr(loaded, name).state_dict(), getattr(original, name).state_dict()
        assert left.keys() == right.keys(), name
        assert all(torch.equal(left[key], right[key]) for key in left), name


def test_a_single_file_checkpoint_loads_to_the_same_model(exported: Path, reference_image: np.ndarray) -> None:
    checkpoint = exported / "openhorde-tiny.safetensors"
    entry = ModelEntry(
        name="tiny-file",
        baseline="sd1",
        file=checkpoint.name,
        config="openhorde-tiny-config",
        sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    )
    loaded = load_pipeline(entry, ModelStore(exported), CPU, torch.float32)
    original = build_tiny_pipeline()
    assert isinstance(loaded, StableDiffusionPipeline)
    assert loaded.safety_checker is None
    assert loaded.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert_same_weights(loaded, original)
    assert np.abs(generate(loaded) - reference_image).max() <= 1


def test_a_diffusers_folder_loads_to_the_same_model(exported: Path, reference_image: np.ndarray) -> None:
    entry = ModelEntry(name="tiny-folder", baseline="sd1", file="tiny-folder")
    loaded = load_pipeline(entry, ModelStore(exported), CPU, torch.float32)
    original = build_tiny_pipeline()
    assert_same_weights(loaded, original)
    assert np.abs(generate(loaded) - reference_image).max() <= 1


def test_an_inpainting_checkpoint_loads_as_an_inpainting_pipeline(exported: Path) -> None:
    entry = ModelEntry(
        name="tiny-inpainting",
        baseline="sd1",
        inpainting=True,
        file="openhorde-tiny-inpainting.safetensors",
        config="openhorde-tiny-inpainting-config",
    )
    loaded = load_pipeline(entry, ModelStore(exported), CPU, torch.float32)
    assert isinstance(loaded, StableDiffusionInpaintPipeline)
    assert loaded.unet.config.in_channels == 9
    original = StableDiffusionInpaintPipeline(**build_tiny_pipeline(inpainting=True).components)
    assert_same_weights(loaded, original)
    assert np.abs(inpaint(loaded) - inpaint(original)).max() <= 1


def test_the_builtin_model_is_built_in_code(tmp_path: Path) -> None:
    pipe = load_pipeline(TINY_ENTRY, ModelStore(tmp_path), CPU, torch.float32)
    assert isinstance(pipe, StableDiffusionPipeline)
    assert_same_weights(pipe, build_tiny_pipeline())
    assert list(tmp_path.iterdir()) == []


def test_the_checksum_is_checked_before_loading(exported: Path) -> None:
    entry = ModelEntry(
        name="tiny-file",
        baseline="sd1",
        file="openhorde-tiny.safetensors",
        config="openhorde-tiny-config",
        sha256="0" * 64,
    )
    with pytest.raises(ChecksumMismatch):
        load_pipeline(entry, ModelStore(exported), CPU, torch.float32)


def test_a_checkpoint_that_does_not_fit_its_baseline_config_is_unavailable(exported: Path) -> None:
    # Without its own config the tiny checkpoint is read with the shipped SD 1.5 config: the shapes differ.
    entry = ModelEntry(name="tiny-as-sd15", baseline="sd1", file="openhorde-tiny.safetensors")
    with pytest.raises(ModelUnavailable, match=r"could not be loaded as sd1.*expected shape"):
        load_pipeline(entry, ModelStore(exported), CPU, torch.float32)


def test_missing_configs_and_files_are_unavailable(exported: Path) -> None:
    store = ModelStore(exported)
    entry = ModelEntry(name="m", baseline="sd1", file="openhorde-tiny.safetensors", config="no-such-config")
    with pytest.raises(ModelUnavailable, match=r"no-such-config has no model_index.json"):
        load_pipeline(entry, store, CPU, torch.float32)
    entry = ModelEntry(name="x", baseline="sdxl", inpainting=True, file="openhorde-tiny.safetensors")
    with pytest.raises(ModelUnavailable, match="no config ships for sdxl inpainting"):
        load_pipeline(entry, store, CPU, torch.float32)
    entry = ModelEntry(name="gone", baseline="sd1", file="gone.safetensors")
    with pytest.raises(ModelUnavailable, match=r"gone.safetensors does not exist"):
        load_pipeline(entry, store, CPU, torch.float32)


def test_a_garbled_checkpoint_is_unavailable(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    config = str(exported / "openhorde-tiny-config")
    entry = ModelEntry(name="broken", baseline="sd1", file="broken.safetensors", config=config)
    with pytest.raises(ModelUnavailable, match=r"broken.safetensors could not be loaded as sd1"):
        load_pipeline(entry, ModelStore(tmp_path), CPU, torch.float32)


def test_hub_models_are_unavailable_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    entry = ModelEntry(name="SDXL", baseline="sdxl", hub_id="stabilityai/stable-diffusion-xl-base-1.0")
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        load_pipeline(entry, ModelStore(tmp_path), CPU, torch.float32)
    # A file that is missing (and cannot be downloaded) falls back on the hub id.
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        load_pipeline(dataclasses.replace(entry, file="sdxl.safetensors"), ModelStore(tmp_path), CPU, torch.float32)


def test_pipeline_classes_and_tokenizers_follow_the_baseline() -> None:
    assert pipeline_class(ModelEntry(name="a", baseline="sd2")).__name__ == "StableDiffusionPipeline"
    assert pipeline_class(ModelEntry(name="a", baseline="sdxl", inpainting=True)).__name__ == (
        "StableDiffusionXLInpaintPipeline"
    )
    sdxl = tokenizers_for("sdxl")
    assert sdxl["tokenizer"].pad_token == "<|endoftext|>" and sdxl["tokenizer_2"].pad_token == "!"
    assert tokenizers_for("sd2")["tokenizer"].pad_token == "!"
