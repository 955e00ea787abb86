"""``domain.limits``: the limit syntax, and the fixed-window decisions against in-memory counters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openhorde.config import Settings
from openhorde.domain.limits import Limit, RateLimiter, parse_limits
from openhorde.errors import RateLimited
from openhorde.storage.counters import MemoryCounters


def test_limits_parse() -> None:
    assert parse_limits("90/minute, 2/second") == (Limit(90, 60), Limit(2, 1))
    assert parse_limits("5/10s") == (Limit(5, 10),)
    assert parse_limits("1 per hour,3/days") == (Limit(1, 3600), Limit(3, 86400))
    assert parse_limits("") == ()


@pytest.mark.parametrize("spec", ["90", "x/minute", "5/fortnight", "5/0s"])
def test_bad_limits_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_limits(spec)


def _limiter(**settings: str) -> RateLimiter:
    defaults = {"rate_limit_users": "3/10s", "rate_limit_default": ""}
    built = Settings(_env_file=None, **{**defaults, **settings})  # type: ignore[call-arg]
    return RateLimiter(built, MemoryCounters(), "secret")


@given(start=st.floats(min_value=0, max_value=1e9, allow_nan=False), extra=st.integers(min_value=1, max_value=5))
async def test_a_window_allows_its_count_then_says_when_it_ends(start: float, extra: int) -> None:
    limiter = _limiter()
    window_start = (start // 10) * 10
    for _ in range(3):
        await limiter.check("GET", "/api/v2/users/{user_id}", "10.0.0.1", None, window_start)
    for _ in range(extra):
        with pytest.raises(RateLimited) as refused:
            await limiter.check("GET", "/api/v2/users/{user_id}", "10.0.0.1", None, window_start + 2.5)
        assert refused.value.retry_after == 8
    # Another address has its own window; the next window starts afresh.
    await limiter.check("GET", "/api/v2/users/{user_id}", "10.0.0.2", None, window_start + 2.5)
    await limiter.check("GET", "/api/v2/users/{user_id}", "10.0.0.1", None, window_start + 10)


async def test_the_anonymous_key_has_its_own_limit_and_heartbeat_is_exempt() -> None:
    limiter = _limiter(
        rate_limit_generate_async="",
        rate_limit_generate_async_key="1/minute",
        rate_limit_generate_async_anonymous="3/minute",
    )
    for _ in range(3):
        await limiter.check("POST", "/api/v2/generate/async", "10.0.0.1", "0000000000", 0.0)
    with pytest.raises(RateLimited):
        await limiter.check("POST", "/api/v2/generate/async", "10.0.0.9", None, 0.0)  # no key = anonymous
    await limiter.check("POST", "/api/v2/generate/async", "10.0.0.1", "alice-key", 0.0)
    with pytest.raises(RateLimited):
        await limiter.check("POST", "/api/v2/generate/async", "10.0.0.1", "alice-key", 0.0)
    strict = _limiter(rate_limit_default="1/minute")
    for _ in range(3):
        await strict.check("GET", "/api/v2/status/heartbeat", "10.0.0.1", None, 0.0)
        await strict.check("GET", "/blobs/images/x.webp", "10.0.0.1", None, 0.0)


async def test_checks_count_per_address_and_request() -> None:
    """A client following several requests gets the check limit for each of them, as on the AI Horde."""
    limiter = _limiter(rate_limit_generate_check="2/second")
    template = "/api/v2/generate/check/{id}"
    for request_id in ("one", "two"):
        for _ in range(2):
            await limiter.check("GET", template, "10.0.0.1", None, 0.0, f"/api/v2/generate/check/{request_id}")
    with pytest.raises(RateLimited):
        await limiter.check("GET", template, "10.0.0.1", None, 0.0, "/api/v2/generate/check/one")
    await limiter.check("GET", template, "10.0.0.2", None, 0.0, "/api/v2/generate/check/one")
