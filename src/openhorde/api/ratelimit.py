"""Rate limits and IP timeouts on every ``/api/v2`` route: one router dependency (``deps.RateLimits``).

The decisions are ``domain.limits.RateLimiter``'s; a refusal is a ``HordeError`` (``RateLimited`` 429 with
``Retry-After``, or ``TimeoutIP`` 403), so it leaves through the one error mapping like any other error.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

from openhorde.api.routing import route_template
from openhorde.config import Settings
from openhorde.domain.limits import RateLimiter
from openhorde.storage.counters import Counters, open_counters


def start_rate_limits(app: FastAPI, settings: Settings, secret: str) -> None:
    """Open the counter store (Redis or memory) and the limiter this app's routes use."""
    app.state.rate_limiter = RateLimiter(settings, open_counters(settings.redis_url, settings.redis_key_prefix), secret)


async def stop_rate_limits(app: FastAPI) -> None:
    """Close the counter store."""
    limiter: RateLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.counters.close()


async def enforce(request: Request, ip: str | None, apikey: str | None) -> None:
    """Count this call against its route's limits; raises ``RateLimited`` or ``TimeoutIP``."""
    limiter: RateLimiter = request.app.state.rate_limiter
    path = request.scope["path"]
    await limiter.check(request.method, route_template(request.scope) or path, ip, apikey, time.time(), path)


async def counters_of(request: Request) -> Counters:
    """The counter store (rate-limit windows, IP timeouts) of this app."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter.counters
