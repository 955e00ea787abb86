"""ControlNet jobs through the engine: the tiny model with a tiny ControlNet loaded from its difference file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openhorde.model_reference import loads
from openhorde.worker.controlnet.annotators import canny
from openhorde.worker.controlnet.pipeline import ControlNetSupport
from openhorde.worker.generation.engine import Engine, GenerationFailed
from openhorde.worker.models.store import ModelStore
from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline
from tests.unit.worker.controlnet import weights

from .conftest import NUMPY_COPY_WARNING, max_diff, spec

pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


def drawing() -> Image.Image:
    image = Image.new("RGB", (64, 64), "black")
    image.paste((255, 255, 255), (16, 16, 48, 48))
    return image


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root: Path = tmp_path_factory.mktemp("store")
    reference = weights.write_store(root, build_tiny_pipeline().unet)
    support = ControlNetSupport.prepare(
        loads(reference.read_bytes()), ModelStore(root), {TINY_MODEL_NAME: "sd1"}, torch.device("cpu")
    )
    return Engine(lambda _name: build_tiny_pipeline(), device="cpu", controlnets=support)


def test_a_controlnet_engine_advertises_controlnet_for_its_complete_baselines(engine: Engine) -> None:
    capabilities = engine.capabilities()

    assert capabilities.controlnet and capabilities.controlnet_baselines == ("sd1",)


def test_a_canny_job_is_steered_by_its_control_map(engine: Engine) -> None:
    plain = engine.generate(spec(n=2)).images
    controlled = engine.generate(spec(n=2, control_type="canny", source_image=drawing())).images

    assert [image.image.size for image in controlled] == [(64, 64), (64, 64)]
    assert max_diff(plain[0].image, controlled[0].image) > 0
    other = engine.generate(spec(control_type="hed", source_image=drawing())).images[0]
    assert max_diff(other.image, controlled[0].image) > 0  # another ControlNet file, another image


def test_return_control_map_returns_the_annotators_map_for_every_image(engine: Engine) -> None:
    result = engine.generate(spec(n=2, control_type="canny", source_image=drawing(), return_control_map=True))

    expected = np.asarray(canny(drawing()))
    assert len(result.images) == 2
    assert all(np.array_equal(np.asarray(image.image), expected) for image in result.images)


def test_a_source_that_is_the_control_map_is_used_as_it_is(engine: Engine) -> None:
    source = Image.new("RGB", (64, 64), (10, 200, 30))
    spec_ = spec(control_type="depth", source_image=source, image_is_control=True, return_control_map=True)

    (image,) = engine.generate(spec_).images

    assert image.image.getpixel((3, 3)) == (10, 200, 30)


def test_an_engine_without_controlnet_neither_advertises_nor_runs_it() -> None:
    engine = Engine(lambda _name: build_tiny_pipeline(), device="cpu")

    assert not engine.capabilities().controlnet
    with pytest.raises(GenerationFailed, match="ControlNet is not enabled"):
        engine.generate(spec(control_type="canny", source_image=drawing()))


def test_a_controlnet_job_without_a_source_image_fails(engine: Engine) -> None:
    with pytest.raises(GenerationFailed, match="needs a control type and a source image"):
        engine.generate(spec(control_type="canny"))


def test_hires_fix_follows_the_control_map_in_both_passes(engine: Engine) -> None:
    source = drawing().resize((128, 128))
    base = spec(width=128, height=128, control_type="canny", source_image=source)

    (hires,) = engine.generate(replace(base, hires_fix=True)).images
    (direct,) = engine.generate(base).images

    assert hires.image.size == (128, 128)
    assert max_diff(hires.image, direct.image) > 0  # a first pass at the tiny model's native 64 px, then a second
