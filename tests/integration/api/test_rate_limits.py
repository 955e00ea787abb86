"""Rate limits (429 + Retry-After), the free tier's per-IP queue limit, and the limits' shared Redis store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from openhorde.domain.accounts import ANONYMOUS_API_KEY
from openhorde.storage.tables import Request
from tests.live_server import Account, Horde, second_server

REDIS_URL = "redis://127.0.0.1:6379/15"
ANONYMOUS = Account(id=0, username="Anonymous", apikey=ANONYMOUS_API_KEY)


def limits(**overrides: Any) -> dict[str, Any]:
    """Settings with the limits on and loose everywhere except ``overrides``."""
    loose = {
        "rate_limits": "on",
        "rate_limit_default": "",
        "rate_limit_generate_async": "",
        "rate_limit_generate_async_key": "",
        "rate_limit_generate_async_anonymous": "",
        "rate_limit_users": "",
        "rate_limit_register": "",
    }
    return {**loose, **overrides}


def _assert_rate_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["rc"] == "RateLimited"
    assert 1 <= int(response.headers["Retry-After"]) <= window


@pytest.mark.parametrize("horde_settings", [limits(rate_limit_generate_async="2/minute")])
async def test_an_anonymous_ip_over_its_limit_gets_429_with_retry_after(horde: Horde) -> None:
    for _ in range(2):
        assert (await horde.generate(ANONYMOUS)).status_code == 202
    _assert_rate_limited(await horde.generate(ANONYMOUS), 60)
    # Other routes have their own counters.
    assert (await horde.client.get("/api/v2/status/models")).status_code == 200


@pytest.mark.parametrize("horde_settings", [limits(rate_limit_generate_async_key="2/minute")])
async def test_key_limits_count_each_key_apart(horde: Horde) -> None:
    alice, bob = await horde.register("alice"), await horde.register("bob")
    for _ in range(2):
        assert (await horde.generate(alice)).status_code == 202
    _assert_rate_limited(await horde.generate(alice), 60)
    assert (await horde.generate(bob)).status_code == 202


@pytest.mark.parametrize("horde_settings", [limits(rate_limit_users="1/second")])
async def test_the_window_resets(horde: Horde) -> None:
    for _ in range(5):
        limited = await horde.client.get("/api/v2/users/0")
        if limited.status_code == 429:
            break
    _assert_rate_limited(limited, 1)
    await asyncio.sleep(float(limited.headers["Retry-After"]) + 0.05)
    assert (await horde.client.get("/api/v2/users/0")).status_code == 200


@pytest.mark.parametrize("horde_settings", [limits(rate_limit_default="2/minute")])
async def test_the_default_limit_covers_other_routes_but_not_the_heartbeat(horde: Horde) -> None:
    for _ in range(2):
        assert (await horde.client.get("/api/v2/status/models")).status_code == 200
    _assert_rate_limited(await horde.client.get("/api/v2/status/models"), 60)
    for _ in range(5):
        assert (await horde.client.get("/api/v2/status/heartbeat")).status_code == 200


@pytest.mark.parametrize(
    "horde_settings",
    [
        {
            "rate_limits": "off",
            "rate_limit_default": "1/minute",
            "rate_limit_generate_async": "1/minute",
            "rate_limit_generate_async_anonymous": "1/minute",
            "anonymous_ip_concurrency": 1,
        }
    ],
)
async def test_rate_limits_off_turns_every_limit_off(horde: Horde) -> None:
    for _ in range(4):
        assert (await horde.generate(ANONYMOUS)).status_code == 202
        assert (await horde.client.get("/api/v2/status/models")).status_code == 200


@pytest.mark.parametrize("horde_settings", [limits(anonymous_ip_concurrency=3)])
async def test_anonymous_callers_may_queue_only_so_many_images_per_ip(horde: Horde) -> None:
    assert (await horde.generate(ANONYMOUS, params={"width": 64, "height": 64, "steps": 5, "n": 2})).status_code == 202
    refused = await horde.generate(ANONYMOUS, params={"width": 64, "height": 64, "steps": 5, "n": 2})
    assert refused.status_code == 429, refused.text
    assert refused.json()["rc"] == "TooManyPrompts"
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await horde.generate(ANONYMOUS)).status_code == 202  # 3 of 3
    # Registered users are not counted against the address.
    alice = await horde.register("alice")
    assert (await horde.generate(alice, params={"width": 64, "height": 64, "steps": 5, "n": 4})).status_code == 202
    # The address is stored only as a keyed hash.
    async with horde.db.unit_of_work() as session:
        hashes = set(await session.scalars(select(Request.client_ip_hash)))
    assert len(hashes) == 1
    (stored,) = hashes
    assert stored and "127.0.0.1" not in stored and len(stored) == 32


async def _redis_or_skip() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError):
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis, flushed afterwards."""
    client = await _redis_or_skip()
    prefix = f"openhorde-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def horde_settings(redis_prefix: str) -> dict[str, Any]:
    return limits(redis_url=REDIS_URL, redis_key_prefix=redis_prefix, rate_limit_users="3/minute")


async def test_two_servers_share_one_counter_through_redis(horde: Horde, redis_prefix: str) -> None:
    async with second_server(horde) as other:
        assert (await horde.client.get("/api/v2/users/0")).status_code == 200
        assert (await horde.client.get("/api/v2/users/0")).status_code == 200
        assert (await other.get("/api/v2/users/0")).status_code == 200
        _assert_rate_limited(await other.get("/api/v2/users/0"), 60)
        _assert_rate_limited(await horde.client.get("/api/v2/users/0"), 60)
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
        await client.aclose()
        assert keys and all(ANONYMOUS_API_KEY.encode() not in key for key in keys)
