"""Rate limits and IP timeouts on every ``/api/v2`` route: one router dependency (``deps.RateLimits``).

The decisions are ``domain.limits.RateLimiter``'s; a refusal is a ``HordeError`` (``RateLimited`` 429 with
``Retry-After``, or ``TimeoutIP`` 403), so it leaves through the one error mapping like any other error.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

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
    await limiter.check(request.method, route_template(request), ip, apikey, time.time(), request.scope["path"])


def route_template(request: Request) -> str:
    """The full path template of the matched route (``/api/v2/users/{user_id}``).

    The route only knows its path within the router that declared it, so the prefix is what the
    request's path has in front of that path filled in with this request's parameters.
    """
    path: str = request.scope["path"]
    route = request.scope.get("route")
    relative = getattr(route, "path", None)
    path_format = getattr(route, "path_format", None)
    if relative is None or path_format is None:
        return path
    try:
        filled = path_format.format(**{name: str(value) for name, value in request.path_params.items()})
    except (KeyError, IndexError, ValueError):
        return path
    return path[: -len(filled)] + relative if filled and path.endswith(filled) else path


async def counters_of(request: Request) -> Counters:
    """The counter store (rate-limit windows, IP timeouts) of this app."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter.counters
