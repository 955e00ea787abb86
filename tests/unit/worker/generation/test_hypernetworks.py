"""Hypernetworks: reading AUTOMATIC1111 files, and applying them to the tiny model's attention at a strength."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.hypernetworks import (
    HypernetworkError,
    HypernetworkModule,
    load_hypernetwork,
    parse_hypernetwork,
    shape_contexts,
)
from openhorde.worker.generation.spec import GenerationResult, HypernetworkSpec, Metadata
from openhorde.worker.models.tiny import TINY_CROSS_ATTENTION_DIM
from tests.adapter_files import TINY_SELF_ATTENTION_DIM, make_hypernetwork

from .conftest import NUMPY_COPY_WARNING, max_diff, spec

WIDTH = TINY_CROSS_ATTENTION_DIM


def _hyper(strength: float, name: str = "hyper") -> tuple[HypernetworkSpec, ...]:
    return (HypernetworkSpec(name, strength),)


# Reading files


def test_an_a1111_file_loads_with_its_layers_and_computes_its_mlp(tmp_path: Path) -> None:
    """The output layer sits at ``linear.3`` (after ReLU and dropout): the MLP must be relu(x·W0+b0)·W3+b3."""
    path = make_hypernetwork(tmp_path / "h.pt", seed=1)
    hypernetwork = load_hypernetwork(path)
    assert hypernetwork.name == "tiny-hypernetwork"
    assert set(hypernetwork.layers) == {WIDTH, TINY_SELF_ATTENTION_DIM}
    raw = torch.load(path, weights_only=True)
    key_weights, value_weights = raw[WIDTH]
    context = torch.randn(2, 5, WIDTH, generator=torch.Generator().manual_seed(3))
    for module, weights in zip(hypernetwork.layers[WIDTH], (key_weights, value_weights), strict=True):
        hidden = torch.relu(context @ weights["linear.0.weight"].T + weights["linear.0.bias"])
        expected = hidden @ weights["linear.3.weight"].T + weights["linear.3.bias"]
        assert torch.allclose(module(context), expected, atol=1e-5)
    key_module, value_module = hypernetwork.layers[WIDTH]
    assert not torch.allclose(key_module(context), value_module(context))


def test_strength_scales_what_is_added_to_the_context(tmp_path: Path) -> None:
    layers = load_hypernetwork(make_hypernetwork(tmp_path / "h.pt", seed=1)).layers[WIDTH]
    context = torch.randn(1, 4, WIDTH, generator=torch.Generator().manual_seed(4))
    unchanged_k, unchanged_v = shape_contexts(context, [(layers, 0.0)])
    assert torch.equal(unchanged_k, context) and torch.equal(unchanged_v, context)
    half_k, half_v = shape_contexts(context, [(layers, 0.5)])
    assert torch.allclose(half_k, context + 0.5 * layers[0](context), atol=1e-6)
    assert torch.allclose(half_v, context + 0.5 * layers[1](context), atol=1e-6)


def test_old_files_with_linear1_and_linear2_keys_load() -> None:
    """The first A1111 hypernetworks had two bare linears named ``linear1``/``linear2`` and no metadata."""
    weights = OrderedDict(
        [
            ("linear1.weight", torch.randn(2 * WIDTH, WIDTH)),
            ("linear1.bias", torch.zeros(2 * WIDTH)),
            ("linear2.weight", torch.randn(WIDTH, 2 * WIDTH)),
            ("linear2.bias", torch.zeros(WIDTH)),
        ]
    )
    hypernetwork = parse_hypernetwork({WIDTH: (weights, weights)}, "old")
    key_module = hypernetwork.layers[WIDTH][0]
    assert hypernetwork.name == "old" and isinstance(key_module, HypernetworkModule)
    context = torch.randn(1, 3, WIDTH)
    expected = (context @ weights["linear1.weight"].T) @ weights["linear2.weight"].T
    assert torch.allclose(key_module(context), expected, atol=1e-4)


def test_files_that_are_not_plain_weights_or_do_not_fit_their_layout_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "code.pt"
    torch.save({WIDTH: (Path("not a tensor"), {})}, pickled)  # needs arbitrary unpickling
    with pytest.raises(HypernetworkError, match="plain-weights"):
        load_hypernetwork(pickled)
    state = torch.load(make_hypernetwork(tmp_path / "h.pt", seed=1), weights_only=True)
    with pytest.raises(HypernetworkError, match="do not fit"):
        parse_hypernetwork({**state, "layer_structure": [1, 3, 1]})
    with pytest.raises(HypernetworkError, match="activation_func"):
        parse_hypernetwork({**state, "activation_func": "no-such-thing"})
    with pytest.raises(HypernetworkError, match="no layers"):
        parse_hypernetwork({"name": "empty"})


# Applying (the shared engine over the tiny model; its resolver serves ``hyper``)

pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING)]


@pytest.mark.generation
def test_strength_zero_gives_the_image_without_a_hypernetwork(engine: Engine, base_result: GenerationResult) -> None:
    """At strength 0 the processor runs but adds nothing: pixel for pixel the plain model's image."""
    zero = engine.generate(spec(hypernetworks=_hyper(0.0)))
    assert zero.metadata == []
    assert max_diff(zero.images[0].image, base_result.images[0].image) == 0


@pytest.mark.generation
def test_strength_one_changes_the_image_and_the_next_job_is_plain_again(
    engine: Engine, base_result: GenerationResult
) -> None:
    applied = engine.generate(spec(hypernetworks=_hyper(1.0)))
    assert applied.metadata == []
    assert max_diff(applied.images[0].image, base_result.images[0].image) > 0
    stronger = engine.generate(spec(hypernetworks=_hyper(2.0)))
    assert max_diff(stronger.images[0].image, applied.images[0].image) > 0
    again = engine.generate(spec())
    assert max_diff(again.images[0].image, base_result.images[0].image) == 0


@pytest.mark.generation
def test_a_missing_hypernetwork_is_noted_and_the_job_still_runs(engine: Engine, base_result: GenerationResult) -> None:
    result = engine.generate(spec(hypernetworks=_hyper(1.0, "absent")))
    assert result.metadata == [Metadata("hypernetwork", "download_failed", "absent")]
    assert max_diff(result.images[0].image, base_result.images[0].image) == 0


def test_the_engine_advertises_hypernetworks_with_an_adapter_resolver(engine: Engine) -> None:
    assert engine.capabilities().hypernetworks is True
    assert Engine(lambda name: None, device="cpu").capabilities().hypernetworks is False
