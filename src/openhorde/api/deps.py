"""Dependencies of the routes, declared once as ``Annotated`` aliases.

``SessionDep`` is the unit of work: one session per HTTP request, committed after the route
returns (before the response is sent), rolled back if it raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.api import proxies, ratelimit
from openhorde.domain import accounts, sharedkeys
from openhorde.domain.context import HordeContext
from openhorde.domain.queue.availability import QueueView
from openhorde.domain.queue.events import RequestFollower
from openhorde.storage.counters import Counters
from openhorde.storage.db import Database
from openhorde.storage.tables import User


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    db: Database = request.app.state.db
    async with db.unit_of_work() as session:
        yield session


def _database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _context(request: Request) -> HordeContext:
    context: HordeContext = request.app.state.context
    return context


def _queue_view(request: Request) -> QueueView:
    view: QueueView = request.app.state.queue_view
    return view


# ``scope="function"``: close the unit of work when the route returns, before the response is
# sent. FastAPI's default ("request") would commit only after the client already has the answer,
# so a client could act on an id or key that is not committed yet.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
ContextDep = Annotated[HordeContext, Depends(_context)]
DatabaseDep = Annotated[Database, Depends(_database)]
"""The database itself, for the rare route that must not hold a session while it waits (``/generate/async``)."""
QueueViewDep = Annotated[QueueView, Depends(_queue_view)]


def _follower(request: Request) -> RequestFollower:
    follower: RequestFollower = request.app.state.follower
    return follower


FollowerDep = Annotated[RequestFollower, Depends(_follower)]
"""Request events for streams and ``Prefer: wait`` (issue 6, part A)."""
ApiKeyHeader = Annotated[str | None, Header(alias="apikey", description="Your API key; 0000000000 for anonymous.")]
ClientAgentHeader = Annotated[str, Header(alias="Client-Agent")]


async def _api_user(session: SessionDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> User:
    return await accounts.authenticate(session, ctx.secret, apikey)


async def _optional_user(session: SessionDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> User | None:
    return await accounts.authenticate_optional(session, ctx.secret, apikey)


ApiUser = Annotated[User, Depends(_api_user)]
OptionalUser = Annotated[User | None, Depends(_optional_user)]


async def _api_caller(session: SessionDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> sharedkeys.Caller:
    return await sharedkeys.authenticate_caller(session, ctx.secret, apikey)


ApiCaller = Annotated[sharedkeys.Caller, Depends(_api_caller)]
"""Like ``ApiUser`` but a shared key is accepted too (acting as its owner): only where the AI Horde takes one."""


def client_ip(request: Request, ctx: ContextDep) -> str | None:
    """The caller's address: the connecting one, or the client a trusted proxy forwarded (``api/proxies.py``)."""
    peer = request.client.host if request.client else None
    return proxies.client_address(peer, request.headers.getlist("x-forwarded-for"), ctx.settings.trusted_proxies)


ClientIp = Annotated[str | None, Depends(client_ip)]


async def _rate_limits(request: Request, ip: ClientIp, apikey: ApiKeyHeader = None) -> None:
    await ratelimit.enforce(request, ip, apikey)


RateLimits = Depends(_rate_limits)
"""Every rate limit and IP timeout: a dependency of the whole ``/api/v2`` router."""
CountersDep = Annotated[Counters, Depends(ratelimit.counters_of)]
