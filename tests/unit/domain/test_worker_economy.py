"""Pure rules of the worker economy: uptime intervals and amounts, the escrow split, automatic trust."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from openhorde.config import Settings
from openhorde.domain.kudos.escrow import held_part, qualifies_for_trust
from openhorde.domain.worker_economy import intervals_crossed, uptime_reward_cents


def test_uptime_reward_is_the_ai_hordes_formula() -> None:
    assert uptime_reward_cents(1, False) == 5200
    assert uptime_reward_cents(10, True) == (50 + 20 + 30) * 100


@given(
    before=st.floats(min_value=0, max_value=1e7),
    elapsed=st.floats(min_value=0, max_value=1e5),
    interval=st.integers(min_value=1, max_value=10_000),
)
def test_intervals_crossed_sum_to_the_intervals_completed(before: float, elapsed: float, interval: int) -> None:
    index, count = intervals_crossed(before, before + elapsed, interval)
    if count:
        assert index == int((before + elapsed) // interval)
        assert count == index - int(before // interval)
    else:
        assert int((before + elapsed) // interval) == int(before // interval) or elapsed == 0


def test_no_interval_when_rewards_are_off_or_no_time_passed() -> None:
    assert intervals_crossed(590, 630, 0) == (0, 0)
    assert intervals_crossed(630, 630, 600) == (0, 0)
    assert intervals_crossed(590, 630, 600) == (1, 1)


@given(amount=st.integers(min_value=0, max_value=10**9), share=st.floats(min_value=0, max_value=1))
def test_the_held_part_is_never_more_than_the_reward(amount: int, share: float) -> None:
    held = held_part(amount, share)
    assert 0 <= held <= amount
    assert abs(held - amount * share) <= 0.5 + 1e-6 * amount


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_automatic_trust_needs_kudos_images_and_age() -> None:
    settings = _settings(trust_after_kudos=100, trust_after_images=3, trust_min_account_age_seconds=1000)
    created_at = 0.0
    assert qualifies_for_trust(settings, created_at, 10_000, 3, now=1000)
    assert not qualifies_for_trust(settings, created_at, 9_999, 3, now=1000)
    assert not qualifies_for_trust(settings, created_at, 10_000, 2, now=1000)
    assert not qualifies_for_trust(settings, created_at, 10_000, 3, now=999)
    assert not qualifies_for_trust(_settings(trust_after_kudos=None), created_at, 10**9, 10**6, now=10**9)
