"""The engine runs a job's post-processors on its images, and advertises post-processing only with some loaded."""

from __future__ import annotations

import pytest
import torch

from openhorde.worker.generation.engine import Engine, GenerationFailed
from openhorde.worker.models.tiny import build_tiny_pipeline
from openhorde.worker.postprocess.chain import PostProcessors
from tests.unit.worker.postprocess import weights

from .conftest import NUMPY_COPY_WARNING, spec

pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


@pytest.fixture(scope="module")
def upscaling_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("store")
    weights.write_pth(folder / "RealESRGAN_x2plus.pth", weights.realesrgan_state(2), wrap="params_ema")
    loaded = PostProcessors.load(["RealESRGAN_x2plus"], folder, torch.device("cpu"))
    return Engine(lambda _name: build_tiny_pipeline(), device="cpu", post_processors=loaded)


def test_an_upscaled_job_comes_back_at_twice_the_size(upscaling_engine: Engine) -> None:
    result = upscaling_engine.generate(spec(post_processing=("RealESRGAN_x2plus",), n=2))

    assert [generated.image.size for generated in result.images] == [(128, 128), (128, 128)]
    assert upscaling_engine.capabilities().post_processing
    assert upscaling_engine.post_processor_names() == ["RealESRGAN_x2plus"]


def test_a_post_processor_not_loaded_fails_the_job_before_generating(upscaling_engine: Engine) -> None:
    with pytest.raises(GenerationFailed, match="GFPGAN"):
        upscaling_engine.generate(spec(post_processing=("GFPGAN",)))


def test_an_engine_without_post_processors_does_not_advertise_them() -> None:
    engine = Engine(lambda _name: build_tiny_pipeline(), device="cpu")

    assert not engine.capabilities().post_processing
    with pytest.raises(GenerationFailed, match="strip_background"):
        engine.generate(spec(post_processing=("strip_background",)))
