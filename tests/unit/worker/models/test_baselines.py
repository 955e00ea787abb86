"""Loading SDXL and SD 2 models from disk: the tiny pipelines of those baselines round-trip through the loader.

The SD 1 round trips are in ``test_loader.py``; these check what differs per baseline: the pipeline class, the
second text encoder and tokenizer, "!" padding, the v-prediction schedule, and the tokenizers the loader supplies.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from openhorde.worker.models.catalogue import Baseline, ModelEntry
from openhorde.worker.models.checkpoint import save_config_folder, save_folder, save_single_file
from openhorde.worker.models.loader import load_pipeline
from openhorde.worker.models.store import ModelStore
from openhorde.worker.models.tiny import build_tiny_sd2_pipeline, build_tiny_sdxl_pipeline

CPU = torch.device("cpu")
SDXL_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
SD2_COMPONENTS = ("unet", "vae", "text_encoder")
EXCLAMATION_MARK_ID = 0
"""The id of "!" in CLIP's vocabulary: the padding of SD 2's and SDXL's second tokenizer."""
# diffusers' Euler scheduler calls np.array(tensor); numpy 2.4 warns that torch's __array__ lacks copy=.
# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.generation,
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with both tiny pipelines as diffusers folders, copies without tokenizers, and an SD 2 checkpoint."""
    root = tmp_path_factory.mktemp("baselines")
    save_folder(cast(Any, build_tiny_sdxl_pipeline()), root / "sdxl-folder")
    sd2 = build_tiny_sd2_pipeline()
    save_folder(sd2, root / "sd2-folder")
    save_single_file(sd2, root / "sd2.safetensors")
    save_config_folder(sd2, root / "sd2-config")
    # Folders converted from single files or trimmed by hand often come without their tokenizers.
    for name in ("sdxl", "sd2"):
        trimmed = shutil.copytree(root / f"{name}-folder", root / f"{name}-no-tokenizer")
        for folder in ("tokenizer", "tokenizer_2"):
            shutil.rmtree(trimmed / folder, ignore_errors=True)
    return root


@pytest.fixture(scope="module")
def sdxl_reference() -> np.ndarray:
    """What the tiny SDXL pipeline generates before any save and load."""
    return generate(build_tiny_sdxl_pipeline())


@pytest.fixture(scope="module")
def sd2_reference() -> np.ndarray:
    """What the tiny SD 2 pipeline generates before any save and load."""
    return generate(build_tiny_sd2_pipeline())


def load(store: Path, name: str, baseline: Baseline, **fields: Any) -> DiffusionPipeline:
    entry = ModelEntry(name=name, baseline=baseline, file=fields.pop("file", name), **fields)
    return load_pipeline(entry, ModelStore(store), CPU, torch.float32, progress=False)


def generate(pipe: Any) -> np.ndarray:
    """One 64 px image in two steps with a negative prompt (so both prompt paths of each encoder run)."""
    pipe.set_progress_bar_config(disable=True)
    output = pipe(
        "a cat",
        negative_prompt="blurry",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(7),
    )
    return np.asarray(output.images[0]).astype(np.int16)


def same_image(left: np.ndarray, right: np.ndarray) -> bool:
    """Equal up to one level per channel: the same weights loaded from disk can round the last float bit differently
    (SDXL's pooled embedding differs by ~1e-7 between a built and a loaded second encoder), as in ``test_loader``."""
    return bool(np.abs(left - right).max() <= 1)


def assert_same_weights(loaded: Any, original: Any, components: tuple[str, ...]) -> None:
    for name in components:
        left, right = getattr(loaded, name).state_dict(), getattr(original, name).state_dict()
        assert left.keys() == right.keys(), name
        assert all(torch.equal(left[key], right[key]) for key in left), name


def test_the_tiny_builders_are_the_same_on_every_build() -> None:
    assert_same_weights(build_tiny_sdxl_pipeline(), build_tiny_sdxl_pipeline(), SDXL_COMPONENTS)
    assert_same_weights(build_tiny_sd2_pipeline(), build_tiny_sd2_pipeline(), SD2_COMPONENTS)


def test_an_sdxl_folder_loads_to_the_same_model(store: Path, sdxl_reference: np.ndarray) -> None:
    loaded = load(store, "sdxl-folder", "sdxl")
    assert isinstance(loaded, StableDiffusionXLPipeline)
    assert loaded.unet.config.addition_embed_type == "text_time"
    assert loaded.tokenizer.pad_token != "!" and loaded.tokenizer_2.pad_token == "!"
    assert_same_weights(loaded, build_tiny_sdxl_pipeline(), SDXL_COMPONENTS)
    assert same_image(generate(loaded), sdxl_reference)


def test_an_sd2_folder_loads_to_the_same_model(store: Path, sd2_reference: np.ndarray) -> None:
    loaded = load(store, "sd2-folder", "sd2")
    assert type(loaded) is StableDiffusionPipeline
    assert loaded.safety_checker is None
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.unet.config.use_linear_projection
    assert loaded.tokenizer.pad_token_id == EXCLAMATION_MARK_ID
    assert_same_weights(loaded, build_tiny_sd2_pipeline(), SD2_COMPONENTS)
    assert same_image(generate(loaded), sd2_reference)


@pytest.mark.parametrize(("name", "baseline"), [("sdxl-no-tokenizer", "sdxl"), ("sd2-no-tokenizer", "sd2")])
def test_a_folder_without_tokenizers_gets_the_baselines_own(
    store: Path, name: str, baseline: Baseline, request: pytest.FixtureRequest
) -> None:
    # SD 2 and SDXL's second encoder pad with "!": the wrong padding would change every embedding.
    loaded: Any = load(store, name, baseline)
    reference = request.getfixturevalue(f"{baseline}_reference")
    if baseline == "sdxl":
        assert (loaded.tokenizer.pad_token, loaded.tokenizer_2.pad_token) == ("<|endoftext|>", "!")
    else:
        assert loaded.tokenizer.pad_token == "!"
    assert same_image(generate(loaded), reference)


def test_an_sd2_checkpoint_with_its_config_loads_to_the_same_model(store: Path, sd2_reference: np.ndarray) -> None:
    """The loader's single-file path for SD 2: its config folder, "!" tokenizer and v-prediction schedule.

    ``save_single_file`` writes the text encoder in the SD 1 (transformers CLIP) layout, not the OpenCLIP one
    real SD 2 checkpoints have, so this does not cover diffusers' OpenCLIP conversion.
    """
    loaded = load(store, "sd2-file", "sd2", file="sd2.safetensors", config="sd2-config")
    assert type(loaded) is StableDiffusionPipeline
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.tokenizer.pad_token_id == EXCLAMATION_MARK_ID
    assert_same_weights(loaded, build_tiny_sd2_pipeline(), SD2_COMPONENTS)
    assert same_image(generate(loaded), sd2_reference)


def test_an_sdxl_pipeline_is_refused_as_a_single_file(tmp_path: Path) -> None:
    """The LDM writer knows one text encoder; SDXL's second (``conditioner.embedders.1``) has no place in it."""
    target = tmp_path / "sdxl.safetensors"
    with pytest.raises(ValueError, match=r"Only single-text-encoder \(SD 1/2 style\) pipelines"):
        save_single_file(cast(Any, build_tiny_sdxl_pipeline()), target)
    assert not target.exists()
