"""Request events between server processes: staged in a transaction, published after its commit.

Domain code calls ``stage(session, event)`` where something happens to a request (created, handed out,
an image submitted, faulted, cancelled). A session event hook hands the staged events to the broker only
after the transaction commits and drops them on rollback, so nothing that was rolled back is ever announced.

Brokers deliver each event to the streams open in *every* server process:

* ``LocalBroker``: this process only (one SQLite server).
* ``PgNotifyBroker``: PostgreSQL ``NOTIFY`` on one channel, received with asyncpg's ``add_listener`` on a
  dedicated connection (reconnected when it drops).
* ``RedisBroker``: Redis pub/sub on ``<prefix>events``, when ``OPENHORDE_REDIS_URL`` is set.

An event is only a wake-up call (request id, kind, job id: far below ``NOTIFY``'s 8000-byte limit); a stream
reads what changed from the database, so a lost notification delays a stream by one poll, never corrupts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from openhorde.storage.db import Database

log = logging.getLogger(__name__)

PG_CHANNEL = "openhorde_events"
REDIS_CHANNEL_SUFFIX = "events"
RECONNECT_DELAY_SECONDS = 1.0
"""Pause before reconnecting a broker connection that failed."""
HEALTH_CHECK_SECONDS = 10.0
"""An idle PostgreSQL listener connection is probed this often, so a dropped one is noticed and replaced."""
OUTBOX_LIMIT = 10_000
"""Events waiting to be published; beyond it new ones are dropped (streams still poll)."""

_STAGED = "openhorde.events.staged"
_BROKER = "openhorde.events.broker"


@dataclass(frozen=True)
class RequestEvent:
    """Something happened to a request: ``kind`` is queued, started, image, fault, faulted or cancelled."""

    request_id: str
    kind: str
    job_id: str | None = None

    def encode(self, origin: str) -> str:
        """The event as a short JSON message tagged with the publishing process."""
        return json.dumps({"o": origin, "r": self.request_id, "k": self.kind, "j": self.job_id})


def decode(message: str | bytes) -> tuple[str, RequestEvent] | None:
    """(origin, event) of a published message; ``None`` for anything malformed."""
    try:
        body = json.loads(message)
        return str(body["o"]), RequestEvent(str(body["r"]), str(body["k"]), body.get("j"))
    except (ValueError, KeyError, TypeError):
        return None


def stage(session: AsyncSession, request_event: RequestEvent) -> None:
    """Announce ``request_event`` once ``session``'s transaction commits (nothing if it rolls back)."""
    if _BROKER in session.info:
        session.info.setdefault(_STAGED, []).append(request_event)


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    staged: list[RequestEvent] | None = session.info.pop(_STAGED, None)
    broker = session.info.get(_BROKER)
    if staged and isinstance(broker, EventBroker):
        broker.publish_nowait(staged)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_STAGED, None)


class Subscription:
    """One listener's wake-up flag for one request."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for an event; whether one came (the flag is cleared)."""
        try:
            await asyncio.wait_for(self.woken.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return False
        self.woken.clear()
        return True


class EventBroker:
    """Fan-out to this process's subscribers; subclasses also carry events to other processes."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self._subscribers: dict[str, set[Subscription]] = {}

    @contextlib.contextmanager
    def subscribe(self, request_id: str) -> Iterator[Subscription]:
        """A subscription to ``request_id``'s events for the length of the block."""
        subscription = Subscription()
        self._subscribers.setdefault(request_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            listeners = self._subscribers.get(request_id)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self._subscribers[request_id]

    def deliver(self, request_event: RequestEvent) -> None:
        """Wake this process's subscribers of the event's request."""
        for subscription in self._subscribers.get(request_event.request_id, ()):
            subscription.woken.set()

    def publish_nowait(self, events: list[RequestEvent]) -> None:
        """Deliver committed events here at once and queue them for the other processes."""
        for request_event in events:
            self.deliver(request_event)

    async def start(self) -> None:
        """Open connections (nothing to open in-process)."""

    async def close(self) -> None:
        """Close connections."""


class LocalBroker(EventBroker):
    """Events within this process only: one server process (SQLite)."""


class _RemoteBroker(EventBroker):
    """Publishes from an outbox in one background task, in commit order; receives on a connection."""

    def __init__(self) -> None:
        super().__init__()
        self._outbox: asyncio.Queue[RequestEvent] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def publish_nowait(self, events: list[RequestEvent]) -> None:
        """Deliver here at once; queue for the other processes."""
        super().publish_nowait(events)
        for request_event in events:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(request_event)

    def received(self, message: str | bytes) -> None:
        """A message from the channel: deliver it unless this process sent it (already delivered)."""
        decoded = decode(message)
        if decoded is not None and decoded[0] != self.origin:
            self.deliver(decoded[1])

    async def start(self) -> None:
        """Start the connection's supervising task."""
        self._task = asyncio.create_task(self._supervise())

    async def close(self) -> None:
        """Stop the task and close the connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._disconnect()

    async def _supervise(self) -> None:
        while True:
            try:
                await self._connect()
                await self._pump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: reconnect; streams poll meanwhile
                log.warning("event broker connection lost (%s); reconnecting", exc)
            await self._disconnect()
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    async def _pump(self) -> None:
        while True:
            try:
                request_event = await asyncio.wait_for(self._outbox.get(), timeout=HEALTH_CHECK_SECONDS)
            except TimeoutError:
                await self._probe()
                continue
            await self._send(request_event.encode(self.origin))

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _disconnect(self) -> None:
        raise NotImplementedError

    async def _send(self, message: str) -> None:
        raise NotImplementedError

    async def _probe(self) -> None:
        raise NotImplementedError


class PgNotifyBroker(_RemoteBroker):
    """PostgreSQL LISTEN/NOTIFY on a dedicated asyncpg connection (the database's own channel namespace)."""

    def __init__(self, sqlalchemy_url: str) -> None:
        super().__init__()
        self._dsn = make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: asyncpg.Connection | None = None

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received(payload)

    async def _connect(self) -> None:
        self._connection = await asyncpg.connect(self._dsn)
        await self._connection.add_listener(PG_CHANNEL, self._on_notify)

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def _send(self, message: str) -> None:
        assert self._connection is not None
        await self._connection.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, message)

    async def _probe(self) -> None:
        assert self._connection is not None
        await self._connection.execute("SELECT 1")


class RedisBroker(_RemoteBroker):
    """Redis pub/sub on ``<key prefix>events``."""

    def __init__(self, url: str, key_prefix: str) -> None:
        super().__init__()
        self._url = url
        self._channel = key_prefix + REDIS_CHANNEL_SUFFIX
        self._redis: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url)
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)
        self._reader = asyncio.create_task(self._read(pubsub))

    async def _read(self, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self.received(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _disconnect(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        client, self._redis = self._redis, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _send(self, message: str) -> None:
        assert self._redis is not None
        await self._redis.publish(self._channel, message)

    async def _probe(self) -> None:
        assert self._redis is not None and self._reader is not None
        if self._reader.done():
            raise ConnectionError("the Redis subscription ended")
        await self._redis.ping()


def open_broker(database: Database, redis_url: str | None, key_prefix: str) -> EventBroker:
    """Redis pub/sub when a Redis URL is set, else PostgreSQL NOTIFY, else in-process; attached to ``database``
    so that its committed sessions publish what they staged."""
    broker: EventBroker
    if redis_url:
        broker = RedisBroker(redis_url, key_prefix)
    elif not database.is_sqlite:
        broker = PgNotifyBroker(database.url)
    else:
        broker = LocalBroker()
    database.sessions.configure(info={_BROKER: broker})
    return broker
