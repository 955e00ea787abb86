"""The NSFW check and the censoring policy, with tiny checkers that flag everything or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.images import censor_image
from openhorde.worker.generation.safety import SafetyChecker, build_tiny_safety_checker
from openhorde.worker.generation.spec import Metadata
from openhorde.worker.models.tiny import build_tiny_pipeline

from .conftest import NUMPY_COPY_WARNING, spec

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


def _engine(checker: SafetyChecker | None, nsfw_worker: bool = True) -> Engine:
    return Engine(lambda name: build_tiny_pipeline(), device="cpu", safety_checker=checker, nsfw_worker=nsfw_worker)


@pytest.fixture(scope="module")
def flag_all() -> SafetyChecker:
    return build_tiny_safety_checker(flag_everything=True)


def test_the_tiny_checkers_flag_everything_or_nothing(flag_all: SafetyChecker) -> None:
    images = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue", "white")]
    assert flag_all.check(images) == [True, True, True]
    assert build_tiny_safety_checker(flag_everything=False).check(images) == [False, False, False]
    assert flag_all.check([]) == []


def test_flagged_images_are_censored_when_the_job_asks(flag_all: SafetyChecker) -> None:
    engine = _engine(flag_all)
    assert engine.capabilities().can_censor
    result = engine.generate(spec(n=2, use_nsfw_censor=True, width=64, height=96))
    for generated in result.images:
        assert generated.state == "censored"
        assert generated.metadata == [Metadata("censorship", "nsfw")]
        assert generated.image.size == (64, 96)
        assert generated.image.tobytes() == censor_image(64, 96).tobytes()


def test_flagged_images_are_kept_with_a_note_when_not_censored(flag_all: SafetyChecker) -> None:
    result = _engine(flag_all).generate(spec())
    assert result.images[0].state == "ok"
    assert result.images[0].metadata == [Metadata("information", "nsfw")]


def test_a_sfw_worker_censors_every_flagged_image(flag_all: SafetyChecker) -> None:
    result = _engine(flag_all, nsfw_worker=False).generate(spec())
    assert result.images[0].state == "censored"


def test_unflagged_images_are_untouched() -> None:
    result = _engine(build_tiny_safety_checker(flag_everything=False)).generate(spec(use_nsfw_censor=True))
    assert result.images[0].state == "ok" and result.images[0].metadata == []


def test_without_a_checker_the_worker_cannot_censor() -> None:
    assert not _engine(None).capabilities().can_censor


def test_a_saved_checker_loads_from_a_folder(flag_all: SafetyChecker, tmp_path: Path) -> None:
    flag_all.model.save_pretrained(tmp_path / "safety_checker")
    flag_all.processor.save_pretrained(tmp_path / "feature_extractor")
    loaded = SafetyChecker.from_pretrained(tmp_path)
    assert loaded.check([Image.new("RGB", (40, 40))]) == [True]


def test_a_worker_of_built_in_models_censors_with_their_checker(tmp_path: Path) -> None:
    """The built-in tiny models ship a checker: a worker serving only them takes requests that ask for censoring,
    and its check really runs (and passes noise)."""
    from openhorde.worker.settings import WorkerSettings
    from openhorde.worker.startup import build_engine

    engine = build_engine(WorkerSettings(models=["openhorde-tiny"], model_store=tmp_path, device="cpu"))
    assert engine.capabilities().can_censor
    result = engine.generate(spec(use_nsfw_censor=True))
    assert result.images[0].state == "ok"
