"""Dependencies of the routes, declared once as ``Annotated`` aliases.

Every dependency is ``async def``, even the ones that only read ``app.state``: FastAPI runs a plain ``def``
dependency in a worker thread, a hop that cost more than the work of most calls.

``StoreDep`` is the unit of work: one per HTTP request, committed after the route returns (before the
response is sent), rolled back if it raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request

from openhorde.api import proxies, ratelimit
from openhorde.domain import accounts, sharedkeys
from openhorde.domain.context import HordeContext
from openhorde.domain.queue.availability import QueueView
from openhorde.domain.queue.events import RequestFollower
from openhorde.storage.counters import Counters
from openhorde.storage.db import Database
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.store import Store


async def _store(request: Request) -> AsyncIterator[Store]:
    db: Database = request.app.state.db
    async with db.store() as store:
        yield store


async def _database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _context(request: Request) -> HordeContext:
    context: HordeContext = request.app.state.context
    return context


async def _queue_view(request: Request) -> QueueView:
    view: QueueView = request.app.state.queue_view
    return view


# ``scope="function"``: close the unit of work when the route returns, before the response is
# sent. FastAPI's default ("request") would commit only after the client already has the answer,
# so a client could act on an id or key that is not committed yet.
StoreDep = Annotated[Store, Depends(_store, scope="function")]


async def _reader(request: Request) -> AsyncIterator[Store]:
    db: Database = request.app.state.db
    async with db.reader() as store:
        yield store


ReaderDep = Annotated[Store, Depends(_reader, scope="function")]
"""Repositories outside any transaction, for routes that only read (``Database.reader``)."""


ContextDep = Annotated[HordeContext, Depends(_context)]
DatabaseDep = Annotated[Database, Depends(_database)]
"""The database itself, for the rare route that must not hold a session while it waits (``/generate/async``)."""
QueueViewDep = Annotated[QueueView, Depends(_queue_view)]


async def _follower(request: Request) -> RequestFollower:
    follower: RequestFollower = request.app.state.follower
    return follower


FollowerDep = Annotated[RequestFollower, Depends(_follower)]
"""Request events for streams and ``Prefer: wait``."""
ApiKeyHeader = Annotated[str | None, Header(alias="apikey", description="Your API key; 0000000000 for anonymous.")]
ClientAgentHeader = Annotated[str, Header(alias="Client-Agent")]


async def _api_user(store: StoreDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> Account:
    return await accounts.authenticate(store, ctx.secret, ctx.keys, apikey)


async def _optional_user(store: StoreDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> Account | None:
    return await accounts.authenticate_optional(store, ctx.secret, ctx.keys, apikey)


ApiUser = Annotated[Account, Depends(_api_user)]
OptionalUser = Annotated[Account | None, Depends(_optional_user)]


async def _api_caller(store: StoreDep, ctx: ContextDep, apikey: ApiKeyHeader = None) -> sharedkeys.Caller:
    return await sharedkeys.authenticate_caller(store, ctx, apikey)


ApiCaller = Annotated[sharedkeys.Caller, Depends(_api_caller)]
"""Like ``ApiUser`` but a shared key is accepted too (acting as its owner): only where the AI Horde takes one."""


async def client_ip(request: Request, ctx: ContextDep) -> str | None:
    """The caller's address: the connecting one, or the client a trusted proxy forwarded (``api/proxies.py``)."""
    peer = request.client.host if request.client else None
    return proxies.client_address(peer, request.headers.getlist("x-forwarded-for"), ctx.settings.limits.trusted_proxies)


ClientIp = Annotated[str | None, Depends(client_ip)]


async def _rate_limits(request: Request, ip: ClientIp, apikey: ApiKeyHeader = None) -> None:
    await ratelimit.enforce(request, ip, apikey)


RateLimits = Depends(_rate_limits)
"""Every rate limit and IP timeout: a dependency of the whole ``/api/v2`` router."""
CountersDep = Annotated[Counters, Depends(ratelimit.counters_of)]
