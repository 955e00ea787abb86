"""Change events between server processes: staged in a transaction, published after its commit.

Domain code announces an event where something changes: a request (created, handed out, an image submitted,
faulted, cancelled; the subject is the request id), or something a process keeps in memory (an account's
roles or key, a worker's settings: subjects ``account:<id>``, ``worker:<id>``). The unit of work (``Store``)
keeps them and hands them to the broker only after it commits, and drops them on rollback, so nothing that was
rolled back is ever announced.

Brokers deliver each event to the subscribers of its subject (event streams) and to every listener (the
in-memory caches) in *every* server process:

* ``LocalBroker``: this process only (one SQLite server).
* ``PgNotifyBroker``: PostgreSQL ``NOTIFY`` on one channel, received with asyncpg's ``add_listener`` on a
  dedicated connection (reconnected when it drops).
* ``RedisBroker``: Redis pub/sub on ``<prefix>events``, when ``OPENHORDE_REDIS_URL`` is set.

An event is only a wake-up call (request id, kind, job id: far below ``NOTIFY``'s 8000-byte limit); a stream
reads what changed from the database, so a lost notification delays a stream by one poll, never corrupts it.
Events can be lost while a broker's connection is down, so whenever it is lost and again when it is back, the
broker tells this process's listeners ``RESYNC``: every in-memory cache forgets everything it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from openhorde.storage.urls import asyncpg_dsn

if TYPE_CHECKING:
    from openhorde.storage.db import Database

log = logging.getLogger(__name__)

PG_CHANNEL = "openhorde_events"
REDIS_CHANNEL_SUFFIX = "events"
RECONNECT_DELAY_SECONDS = 1.0
"""Pause before reconnecting a broker connection that failed."""
HEALTH_CHECK_SECONDS = 10.0
"""An idle PostgreSQL listener connection is probed this often, so a dropped one is noticed and replaced."""
BATCH_LIMIT = 20
"""Events one message carries at most, each at most about ``MODELS_LIMIT_BYTES`` plus 150 bytes: well under
PostgreSQL's 8000-byte ``NOTIFY`` payload."""
MODELS_LIMIT_BYTES = 200
PUBLISH_DELAY_SECONDS = 0.01
"""How long the first event of a message waits for others to join it: under load one message (one ``NOTIFY``, a
small transaction of its own) carries several events instead of one each."""
OUTBOX_LIMIT = 10_000
"""Events waiting to be published; beyond it new ones are dropped (streams still poll)."""

EVERYTHING = "*"
"""The subject of ``RESYNC``."""


@dataclass(frozen=True)
class Change:
    """Something changed. ``subject``: a request id, or ``account:<id>``, ``worker:<id>``...; ``kind``: what
    happened (for a request: queued, started, image, fault, faulted, cancelled); ``models``: the models whose
    queue a request event touches (empty when it touches none, or any)."""

    subject: str
    kind: str
    job_id: str | None = None
    models: tuple[str, ...] = ()

    def as_list(self) -> list[Any]:
        """The event as a short JSON-able list. A long list of models is sent as none ("any model"), which
        tells listeners more than happened, never less, and keeps messages small."""
        models = list(self.models)
        if len(json.dumps(models, ensure_ascii=False).encode()) > MODELS_LIMIT_BYTES:
            models = []
        return [self.subject, self.kind, self.job_id, models]


RESYNC = Change(EVERYTHING, "resync")
"""Delivered to this process's listeners (never published) when events from other processes may have been lost."""


def encode(origin: str, changes: list[Change]) -> str:
    """Events as one message tagged with the publishing process."""
    body = {"o": origin, "e": [change.as_list() for change in changes]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode(message: str | bytes) -> tuple[str, list[Change]] | None:
    """(origin, events) of a published message; ``None`` for anything malformed."""
    try:
        body = json.loads(message)
        changes = [
            Change(str(subject), str(kind), job_id, tuple(str(model) for model in models or ()))
            for subject, kind, job_id, models in body["e"]
        ]
        return str(body["o"]), changes
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Subscription:
    """One listener's wake-up flag for one request."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for an event; whether one came (the flag is cleared)."""
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.woken.wait()
        except TimeoutError:
            return False
        self.woken.clear()
        return True


Listener = Callable[[Change], None]


class EventBroker:
    """Fan-out to this process's subscribers and listeners; subclasses also carry events to other processes."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self._own_prefix = encode(self.origin, [])[: -len(',"e":[]}')] + ","
        """How this process's own messages begin (``encode`` puts the origin first)."""
        self._subscribers: dict[str, set[Subscription]] = {}
        self._listeners: list[Listener] = []

    @contextlib.contextmanager
    def subscribe(self, subject: str) -> Iterator[Subscription]:
        """A subscription to ``subject``'s events for the length of the block."""
        subscription = Subscription()
        self._subscribers.setdefault(subject, set()).add(subscription)
        try:
            yield subscription
        finally:
            listeners = self._subscribers.get(subject)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self._subscribers[subject]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event, whatever its subject (it must be quick and must not raise)."""
        self._listeners.append(listener)

    def deliver(self, change: Change) -> None:
        """Tell this process's listeners, and wake the subscribers of the event's subject."""
        for listener in self._listeners:
            listener(change)
        for subscription in self._subscribers.get(change.subject, ()):
            subscription.woken.set()

    def publish_nowait(self, events: list[Change]) -> None:
        """Deliver committed events here at once and queue them for the other processes."""
        for change in events:
            self.deliver(change)

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
        self._outbox: asyncio.Queue[Change] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def publish_nowait(self, events: list[Change]) -> None:
        """Deliver here at once; queue for the other processes."""
        super().publish_nowait(events)
        for change in events:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(change)

    def connection_lost(self) -> None:
        """The connection closed under us: caches forget what they hold, and the pump reconnects at once."""
        self.deliver(RESYNC)
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(RESYNC)

    def received(self, message: str | bytes) -> None:
        """A message from the channel: deliver its events unless this process sent them (already delivered)."""
        if isinstance(message, str) and message.startswith(self._own_prefix):
            return  # this process's own message (every listener hears its own NOTIFY): delivered already
        decoded = decode(message)
        if decoded is not None and decoded[0] != self.origin:
            for change in decoded[1]:
                self.deliver(change)

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
                self.deliver(RESYNC)  # what other processes announced while there was no connection is unknown
                await self._pump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: reconnect; streams poll meanwhile
                log.warning("event broker connection lost (%s); reconnecting", exc)
            await self._disconnect()
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    async def _pump(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for could swallow a cancellation that came as
            # the queue handed over an item, and close() then waited for this task forever.
            try:
                async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                    change = await self._outbox.get()
            except TimeoutError:
                await self._probe()
                continue
            if change is RESYNC:  # the connection was lost (``connection_lost``): fail here, and reconnect
                await self._probe()
                continue
            # Whatever else is waiting goes in the same message: one round trip for a burst of events.
            if self._outbox.empty():
                await asyncio.sleep(PUBLISH_DELAY_SECONDS)
            batch = [change]
            while len(batch) < BATCH_LIMIT and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            await self._send(encode(self.origin, batch))

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
        self._dsn = asyncpg_dsn(sqlalchemy_url)
        self._connection: asyncpg.Connection | None = None

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received(payload)

    async def _connect(self) -> None:
        self._connection = await asyncpg.connect(self._dsn)
        self._connection.add_termination_listener(lambda _connection: self.connection_lost())
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
    so that its units of work publish what they announced once they commit."""
    broker: EventBroker
    if redis_url:
        broker = RedisBroker(redis_url, key_prefix)
    elif not database.is_sqlite:
        broker = PgNotifyBroker(database.url)
    else:
        broker = LocalBroker()
    database.broker = broker
    return broker
