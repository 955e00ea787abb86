"""Short-lived counters and flags with expiry: rate-limit windows and IP timeouts.

``RedisCounters`` keeps them in Redis, so every server process sharing it sees the same counts;
``MemoryCounters`` keeps them in this process (one server process). Times are passed in, so callers
(and tests) decide what "now" is; Redis applies expiry with its own clock, which on one machine agrees.
"""

from __future__ import annotations

import math
from typing import Protocol

import redis.asyncio as aioredis

DEFAULT_KEY_PREFIX = "openhorde:"
_PURGE_EVERY = 1024
"""The in-memory store drops expired entries after this many writes."""


class Counters(Protocol):
    """Counting hits in windows, and marks that expire."""

    async def hit(self, key: str, ttl_seconds: int, now: float) -> int:
        """Count one hit on ``key`` (created with ``ttl_seconds`` to live) and return its count so far."""
        ...

    async def mark(self, key: str, ttl_seconds: int, now: float) -> None:
        """Set ``key`` for ``ttl_seconds`` (replacing an earlier mark)."""
        ...

    async def remaining(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` expires; ``None`` when it is not set."""
        ...

    async def unmark(self, key: str) -> bool:
        """Remove ``key``; whether it was set."""
        ...

    async def marks(self, prefix: str, now: float) -> dict[str, float]:
        """Every set key starting with ``prefix`` (without it) and its seconds left."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCounters:
    """Counters in this process's memory."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, float]] = {}
        self._writes = 0

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry

    def _written(self, now: float) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}

    async def hit(self, key: str, ttl_seconds: int, now: float) -> int:
        """Count one hit; the count so far in this key's life."""
        entry = self._live(key, now)
        count, expires = (entry[0] + 1, entry[1]) if entry else (1, now + ttl_seconds)
        self._entries[key] = (count, expires)
        self._written(now)
        return count

    async def mark(self, key: str, ttl_seconds: int, now: float) -> None:
        """Set the key for ``ttl_seconds``."""
        self._entries[key] = (1, now + ttl_seconds)
        self._written(now)

    async def remaining(self, key: str, now: float) -> float | None:
        """Seconds the key has left, or ``None``."""
        entry = self._live(key, now)
        return entry[1] - now if entry else None

    async def unmark(self, key: str) -> bool:
        """Remove the key; whether it was set."""
        return self._entries.pop(key, None) is not None

    async def marks(self, prefix: str, now: float) -> dict[str, float]:
        """Live keys under ``prefix`` and their seconds left."""
        return {k[len(prefix) :]: v[1] - now for k, v in self._entries.items() if k.startswith(prefix) and v[1] > now}

    async def close(self) -> None:
        """Release what the store holds."""
        self._entries.clear()


class RedisCounters:
    """Counters in Redis, shared by every server process using the same URL and key prefix."""

    def __init__(self, url: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._prefix = key_prefix

    async def hit(self, key: str, ttl_seconds: int, now: float) -> int:
        """Count one hit; the count so far in this key's life."""
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, ttl_seconds)
            count, _ = await pipe.execute()
        return int(count)

    async def mark(self, key: str, ttl_seconds: int, now: float) -> None:
        """Set the key for ``ttl_seconds``."""
        await self._redis.set(self._prefix + key, "1", ex=max(1, ttl_seconds))

    async def remaining(self, key: str, now: float) -> float | None:
        """Seconds the key has left, or ``None``."""
        millis = await self._redis.pttl(self._prefix + key)
        return millis / 1000 if millis > 0 else None

    async def unmark(self, key: str) -> bool:
        """Remove the key; whether it was set."""
        return bool(await self._redis.delete(self._prefix + key))

    async def marks(self, prefix: str, now: float) -> dict[str, float]:
        """Live keys under ``prefix`` and their seconds left."""
        found: dict[str, float] = {}
        start = len(self._prefix) + len(prefix)
        async for name in self._redis.scan_iter(match=_glob_escape(self._prefix + prefix) + "*", count=500):
            millis = await self._redis.pttl(name)
            if millis > 0:
                found[name[start:]] = millis / 1000
        return found

    async def close(self) -> None:
        """Release what the store holds."""
        await self._redis.aclose()


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def open_counters(redis_url: str | None, key_prefix: str = DEFAULT_KEY_PREFIX) -> Counters:
    """Redis-backed counters when a URL is given, else in-memory ones."""
    return RedisCounters(redis_url, key_prefix) if redis_url else MemoryCounters()


def seconds_left(value: float) -> int:
    """A whole number of seconds to wait, at least 1 (for ``Retry-After``)."""
    return max(1, math.ceil(value))
