"""``domain.kudos.pricing``: calibration to the AI Horde's kudos model and the shape of the price."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openhorde.domain.kudos.pricing import (
    HORDE_TAX_KUDOS,
    LORA_KUDOS,
    SECOND_ORDER_SAMPLERS,
    PriceInputs,
    accurate_steps,
    image_charge,
    image_price,
    request_charge,
)
from openhorde.domain.post_processors import UPSCALERS

SIDES = st.integers(min_value=1, max_value=48).map(lambda n: n * 64)
STEPS = st.integers(min_value=1, max_value=500)
SAMPLERS = st.sampled_from(["k_euler", "k_euler_a", "k_lms", "k_heun", "k_dpm_2", "k_dpmpp_sde", "lcm", "DDIM"])
POST_PROCESSING = st.lists(
    st.sampled_from(["RealESRGAN_x4plus", "GFPGAN", "CodeFormers", "strip_background"]), max_size=3
)


@st.composite
def price_inputs(draw: st.DrawFn) -> PriceInputs:
    return PriceInputs(
        width=draw(SIDES),
        height=draw(SIDES),
        steps=draw(STEPS),
        sampler_name=draw(SAMPLERS),
        hires_fix=draw(st.booleans()),
        controlnet=draw(st.booleans()),
        source_image=draw(st.booleans()),
        post_processing=tuple(draw(POST_PROCESSING)),
        loras=draw(st.integers(min_value=0, max_value=5)),
        textual_inversions=draw(st.booleans()),
        slow_workers=draw(st.booleans()),
        worker_blocklist=draw(st.booleans()),
    )


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (PriceInputs(width=512, height=512, steps=50, sampler_name="k_euler"), 11.00),
        (PriceInputs(width=512, height=512, steps=30, sampler_name="k_euler_a"), 7.61),
        (PriceInputs(width=1024, height=1024, steps=30, sampler_name="k_euler_a"), 20.57),
    ],
    ids=["512-50-k_euler", "512-30-k_euler_a", "1024-30-k_euler_a"],
)
def test_price_matches_the_ai_horde_calibration_points(inputs: PriceInputs, expected: float) -> None:
    assert image_price(inputs) == pytest.approx(expected, abs=0.05)


@given(inputs=price_inputs(), more=st.integers(min_value=1, max_value=200))
def test_price_never_decreases_with_more_steps(inputs: PriceInputs, more: int) -> None:
    bigger = PriceInputs(**{**inputs.__dict__, "steps": inputs.steps + more})
    assert image_price(bigger) >= image_price(inputs)
    assert image_charge(bigger) >= image_charge(inputs)


@given(inputs=price_inputs(), more=st.integers(min_value=1, max_value=16).map(lambda n: n * 64))
def test_price_never_decreases_with_more_pixels(inputs: PriceInputs, more: int) -> None:
    wider = PriceInputs(**{**inputs.__dict__, "width": inputs.width + more})
    taller = PriceInputs(**{**inputs.__dict__, "height": inputs.height + more})
    for bigger in (wider, taller):
        assert image_price(bigger) >= image_price(inputs)
        assert image_charge(bigger) >= image_charge(inputs)


@given(inputs=price_inputs())
def test_charge_covers_the_price_plus_the_horde_tax(inputs: PriceInputs) -> None:
    assert image_price(inputs) > 0
    # Both are rounded to hundredths, so compare with half a hundredth of slack for float error.
    assert image_charge(inputs) >= image_price(inputs) + HORDE_TAX_KUDOS - 0.005


@given(inputs=price_inputs(), n=st.integers(min_value=1, max_value=20))
def test_request_charge_is_the_image_charge_times_n(inputs: PriceInputs, n: int) -> None:
    assert request_charge(inputs, n) == pytest.approx(image_charge(inputs) * n, abs=0.005)


@pytest.mark.parametrize("sampler", sorted(SECOND_ORDER_SAMPLERS))
def test_second_order_samplers_cost_double_the_steps(sampler: str) -> None:
    assert accurate_steps(30, sampler) == 60
    doubled = PriceInputs(steps=30, sampler_name=sampler)
    assert image_price(doubled) == image_price(PriceInputs(steps=60, sampler_name="k_euler"))


def test_first_order_samplers_cost_their_steps() -> None:
    assert accurate_steps(30, "k_euler") == 30
    assert accurate_steps(30, "k_euler_a") == 30


@pytest.mark.parametrize("loras", [1, 2, 5])
def test_each_lora_adds_three_kudos(loras: int) -> None:
    plain = image_price(PriceInputs())
    assert image_price(PriceInputs(loras=loras)) == pytest.approx(plain + LORA_KUDOS * loras, abs=0.01)
    assert LORA_KUDOS == 3


@pytest.mark.parametrize("upscaler", sorted(UPSCALERS))
def test_an_upscaler_adds_to_price_and_charge(upscaler: str) -> None:
    plain = PriceInputs()
    upscaled = PriceInputs(post_processing=(upscaler,))
    assert image_price(upscaled) > image_price(plain)
    assert image_charge(upscaled) > image_charge(plain)


def test_refusing_slow_workers_multiplies_the_charge_by_1_2() -> None:
    inputs = PriceInputs()
    fast_only = PriceInputs(slow_workers=False)
    assert image_price(fast_only) == image_price(inputs)  # the worker's reward does not change
    assert image_charge(fast_only) == pytest.approx(image_charge(inputs) * 1.2, abs=0.01)
