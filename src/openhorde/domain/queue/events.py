"""Push instead of poll: a request's life as a stream of events, and waiting for a request to finish.

Where a request changes (created, handed out, an image submitted, a job faulted or expired, cancelled), the
domain calls ``announce``; the event is published to every server process after the transaction commits
(``storage.events``). A stream does not trust the event's content: woken by it (or every ``poll_seconds``
when nothing came, which also covers a notification lost while a broker reconnected), it reads the request
from the database and emits what is new, always in this order::

    queued ─▶ position* ─▶ started (per job handed out) ─▶ image (per image finished) ─▶ done | faulted

Each event's id is a cursor "<jobs started>-<images sent>"; a client resuming with ``Last-Event-ID`` gets
only the jobs and images after it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from openhorde.domain.context import HordeContext
from openhorde.domain.queue import status
from openhorde.domain.queue.availability import QueueView
from openhorde.domain.queue.event_kinds import CANCELLED, FAULT, IMAGE, QUEUED, STARTED, TIMED_OUT
from openhorde.domain.queue.states import JobState, RequestState
from openhorde.domain.queue.status import DeliveredImage, RequestStatus
from openhorde.errors import RequestNotFound
from openhorde.storage.db import Database
from openhorde.storage.events import Change, EventBroker
from openhorde.storage.store import Store

__all__ = [
    "CANCELLED",
    "FAULT",
    "IMAGE",
    "QUEUED",
    "STARTED",
    "TIMED_OUT",
    "RequestFollower",
    "StartedJob",
    "StreamEvent",
    "announce",
    "parse_cursor",
]

REMOVED_REASON = "The request no longer exists: it expired or was removed."


def announce(store: Store, request_id: str, kind: str, job_id: str | None = None, models: Sequence[str] = ()) -> None:
    """Tell every stream of ``request_id`` that it changed, once the unit of work commits. ``models``: the models
    whose queue a new waiting image joins (none: the request accepts any model)."""
    store.announce(Change(request_id, kind, job_id, tuple(models)))


@dataclass(frozen=True)
class StartedJob:
    """A job of the request handed to a worker."""

    job_id: str
    worker_id: str
    worker_name: str
    model: str


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event: ``name`` is queued, position, started, image, done or faulted."""

    name: str
    id: str
    status: RequestStatus | None = None
    job: StartedJob | None = None
    image: DeliveredImage | None = None
    reason: str | None = None

    @property
    def final(self) -> bool:
        """Whether the stream ends with this event."""
        return self.name in ("done", "faulted")


def parse_cursor(text: str | None) -> tuple[int, int] | None:
    """(jobs started, images sent) of a ``Last-Event-ID``; ``None`` when absent or not ours."""
    if not text:
        return None
    started, _, images = text.strip().partition("-")
    if not (started.isdigit() and images.isdigit()):
        return None
    return int(started), int(images)


@dataclass
class _Seen:
    """What a stream has told its client so far."""

    queued: bool = False
    skip_started: int = 0
    skip_images: int = 0
    handed: int = -1
    started: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    place: tuple[int, int] | None = None

    @property
    def cursor(self) -> str:
        return f"{len(self.started)}-{len(self.images)}"


class RequestFollower:
    """Follows requests for streams and waiting clients: the database, the queue view and the broker."""

    def __init__(
        self, db: Database, ctx: HordeContext, view: QueueView, broker: EventBroker, poll_seconds: float
    ) -> None:
        self.db = db
        self.ctx = ctx
        self.view = view
        self.broker = broker
        self.poll_seconds = poll_seconds

    async def require(self, request_id: str) -> None:
        """Raise ``RequestNotFound`` unless the request exists."""
        async with self.db.store() as store:
            await status.get_counters(store, request_id)

    async def events(self, request_id: str, last_event_id: str | None = None) -> AsyncIterator[StreamEvent | None]:
        """The request's events until it ends; ``None`` after each quiet poll (a chance for a keep-alive)."""
        cursor = parse_cursor(last_event_id)
        seen = _Seen(queued=cursor is not None, skip_started=cursor[0] if cursor else 0)
        seen.skip_images = cursor[1] if cursor else 0
        with self.broker.subscribe(request_id) as subscription:
            fresh = True
            while True:
                batch = await self._step(request_id, seen, fresh)
                for event in batch:
                    yield event
                if batch and batch[-1].final:
                    return
                if not batch:
                    yield None
                fresh = await subscription.wait(self.poll_seconds)

    async def _step(self, request_id: str, seen: _Seen, fresh: bool) -> list[StreamEvent]:
        """What is new since the last step; ``fresh`` drops the cached check answer first (we were woken)."""
        async with self.db.store() as store:
            now = time.time()
            if fresh:
                self.view.forget(request_id)
            try:
                current = await status.check_status(store, self.ctx, self.view, request_id, now)
            except RequestNotFound:
                return [StreamEvent("faulted", seen.cursor, reason=REMOVED_REASON)]
            batch: list[StreamEvent] = []
            place = (current.queue_position, current.wait_time)
            if not seen.queued:
                seen.queued, seen.place = True, place
                batch.append(StreamEvent("queued", seen.cursor, status=current))
            handed = current.processing + current.finished + current.restarted
            if handed != seen.handed or current.finished > len(seen.images) or current.done:
                seen.handed = handed
                batch += await self._jobs(store, request_id, seen, now)
            if current.done:
                batch.append(StreamEvent("faulted" if current.faulted else "done", seen.cursor, status=current))
            elif place != seen.place:
                seen.place = place
                batch.append(StreamEvent("position", seen.cursor, status=current))
            return batch

    async def _jobs(self, store: Store, request_id: str, seen: _Seen, now: float) -> list[StreamEvent]:
        """``started`` for each job not announced yet, then ``image`` for each image not sent yet."""
        jobs = await store.statuses.jobs(request_id)
        finished = sorted((j for j in jobs if j.state == JobState.DONE), key=lambda j: (j.finished_at or 0.0, j.id))
        seen.started.update(j.id for j in jobs[: seen.skip_started])
        seen.images.update(j.id for j in finished[: seen.skip_images])
        seen.skip_started = seen.skip_images = 0
        batch: list[StreamEvent] = []
        for job in jobs:
            if job.id not in seen.started:
                seen.started.add(job.id)
                started = StartedJob(job.id, job.worker_id or "", job.worker_name, job.model)
                batch.append(StreamEvent("started", seen.cursor, job=started))
        if any(job.id not in seen.images for job in finished):
            counters = await status.get_counters(store, request_id)
            for job in finished:
                if job.id not in seen.images:
                    seen.images.add(job.id)
                    image = await status.delivered_image(self.ctx, counters, job, now)
                    batch.append(StreamEvent("image", seen.cursor, image=image))
        return batch

    async def wait_finished(self, request_id: str, seconds: float) -> RequestStatus | None:
        """The request's status with its images once it has ended, if that happens within ``seconds``."""
        deadline = time.monotonic() + seconds
        with self.broker.subscribe(request_id) as subscription:
            while True:
                async with self.db.store() as store:
                    counters = await status.get_counters(store, request_id)
                    if counters.state != RequestState.QUEUED:
                        return await status.full_status(store, self.ctx, self.view, request_id)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                await subscription.wait(min(left, self.poll_seconds))
