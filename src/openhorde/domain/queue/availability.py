"""Honest numbers: can anyone serve a request, where is it in the queue, how long will it take.

Whether a request is possible is exact: the live workers that pass every rule of the pop for it (models,
size, censoring, trust, LoRAs, post-processing, blacklists...) are counted by one statement
(``eligible_workers``, ``eligible_worker_threads``), kept per request for ``ELIGIBILITY_MAX_AGE_SECONDS``, as
the AI Horde keeps its own for a short while. A request with none and nothing in progress is not possible.

Queue positions and waits count only requests that live workers could take (they serve one
of its models and take its size). They come from a snapshot of the queue taken at most once
per ``SNAPSHOT_MAX_AGE_SECONDS`` per process (one query), so a client polling
``/generate/check`` costs a dictionary lookup, not a scan. A deep queue makes the snapshot
slow (about a second at 100,000 queued), so it is then taken less often (at most
``SNAPSHOT_DUTY`` of the time), and while one call takes it the others answer from the last.

A request's own counters (waiting, processing, finished...) are kept too, until an event says the request
changed (every change announces one, in whichever process made it) or ``check_cache_seconds`` passes, so
checking a request nothing happened to reads nothing. A change that returns the counters it wrote (a submit's
one statement) leaves them in its own process's memory, with the request's finished jobs when it knows them all
(its first image), unless another change of the request was heard while it ran: that one may have committed
after it (``QueueView.remember_written``). A status then reads nothing either.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from openhorde.config import Settings
from openhorde.domain.queue.states import QUEUE_TIMEOUT_SECONDS
from openhorde.storage.events import EVERYTHING, Change
from openhorde.storage.repositories.availability import Eligibility
from openhorde.storage.repositories.statuses import RequestCounters, RequestJob
from openhorde.storage.store import Store

SNAPSHOT_MAX_AGE_SECONDS = 1.0
SNAPSHOT_DUTY = 0.2
"""The largest share of time one process spends taking snapshots: one that took 1 s is kept 5 s."""
DEFAULT_WORKER_SPEED_PPS = 1_000_000.0
"""Speed assumed for a worker that has not delivered an image yet (pixel-steps per second)."""
ELIGIBILITY_MAX_AGE_SECONDS = 5.0
"""How long a process reuses the count of workers that could serve a request before counting them again."""
STALL_MARGIN_SECONDS = 60.0
"""``might_stall`` compares a pessimistic wait (the estimate plus the larger of this and half the estimate) with
the time the request has left before it times out."""


def live_since(settings: Settings, now: float) -> float:
    """When a worker must have checked in last to count as live (``worker_stale_seconds`` ago)."""
    return now - settings.queue.worker_stale_seconds


async def eligible_workers(store: Store, settings: Settings, request_id: str, now: float) -> Eligibility:
    """The workers seen in the last ``worker_stale_seconds`` that could serve this request now."""
    return await store.availability.eligible(request_id, live_since(settings, now), DEFAULT_WORKER_SPEED_PPS)


class EligibilityMemo:
    """Per process: the workers that could serve each recent request, counted at most every
    ``ELIGIBILITY_MAX_AGE_SECONDS``. Kept in the ``HordeContext`` so that the count a new request's creation takes
    (for its ``NoAvailableWorker`` warning) also answers its first checks."""

    MAX_REQUESTS = 10_000

    def __init__(self) -> None:
        self._counted: dict[str, tuple[float, Eligibility]] = {}

    async def count(self, store: Store, settings: Settings, request_id: str, now: float) -> Eligibility:
        """The eligible workers of ``request_id``, counted again when the last count is too old."""
        entry = self._counted.get(request_id)
        if entry is not None and 0 <= now - entry[0] < ELIGIBILITY_MAX_AGE_SECONDS:
            return entry[1]
        found = await eligible_workers(store, settings, request_id, now)
        self.remember(request_id, now, found)
        return found

    def remember(self, request_id: str, now: float, found: Eligibility) -> None:
        """Keep a count taken at ``now`` (by ``count``, or by the statement that queued the request)."""
        if len(self._counted) >= self.MAX_REQUESTS:
            horizon = now - ELIGIBILITY_MAX_AGE_SECONDS
            self._counted = {key: value for key, value in self._counted.items() if value[0] > horizon}
        self._counted[request_id] = (now, found)

    def on_change(self, change: Change) -> None:
        """A broker listener: after a broker outage (``EVERYTHING``) every request is counted again."""
        if change.subject == EVERYTHING:
            self._counted.clear()


@dataclass(frozen=True)
class Place:
    """A request's place in the queue."""

    position: int
    things_ahead: int


@dataclass
class QueueSnapshot:
    """The servable part of the queue in hand-out order, and the live workers' total speed."""

    taken_at: float = 0.0
    places: dict[str, Place] = field(default_factory=dict)
    live_speed_pps: float = 0.0
    live_threads: int = 0


class QueueView:
    """Per-process caches: the queue snapshot (refreshed at most once a second, on demand) and the counters of
    recently checked requests (kept until the request announces a change, at most ``check_cache_seconds``)."""

    MAX_CACHED_REQUESTS = 10_000

    def __init__(self, settings: Settings, eligibility: EligibilityMemo) -> None:
        self.settings = settings
        self.snapshot = QueueSnapshot()
        self.snapshot_max_age = SNAPSHOT_MAX_AGE_SECONDS
        self._lock = asyncio.Lock()
        self._counters: dict[str, tuple[float, RequestCounters, tuple[RequestJob, ...] | None]] = {}
        """Per request: when its counters were read or written, the counters, and its finished jobs if known."""
        self._eligibility = eligibility
        self._heard = 0
        """Changes heard so far, whatever their subject: the clock of ``mark``."""
        self._epoch = 0
        """Raised whenever ``_changes`` forgets, so that no mark taken before compares with what it holds after."""
        self._changes: dict[str, tuple[int, int]] = {}
        """Per subject, when (``_heard``) its last change was heard, and the change before it."""

    def cached_counters(self, request_id: str, now: float) -> RequestCounters | None:
        """The counters of a request read less than ``check_cache_seconds`` ago, unless it changed since."""
        entry = self._counters.get(request_id)
        if entry is None or now - entry[0] >= self.settings.queue.check_cache_seconds:
            return None
        return entry[1]

    def cached_status(self, request_id: str, now: float) -> tuple[RequestCounters, list[RequestJob]] | None:
        """``cached_counters`` with the request's finished jobs, when they were kept with them."""
        entry = self._counters.get(request_id)
        if entry is None or entry[2] is None or now - entry[0] >= self.settings.queue.check_cache_seconds:
            return None
        return entry[1], list(entry[2])

    def remember_counters(
        self, counters: RequestCounters, now: float, finished_jobs: tuple[RequestJob, ...] | None = None
    ) -> None:
        """Keep a request's counters for the next checks (when caching is on); with its finished jobs, all of them,
        for the next status too."""
        if self.settings.queue.check_cache_seconds <= 0:
            return
        if len(self._counters) >= self.MAX_CACHED_REQUESTS:
            horizon = now - self.settings.queue.check_cache_seconds
            self._counters = {key: value for key, value in self._counters.items() if value[0] > horizon}
        self._counters[counters.id] = (now, counters, finished_jobs)

    def mark(self) -> tuple[int, int]:
        """Where the changes heard stand, taken before a write whose counters ``remember_written`` may keep."""
        return self._epoch, self._heard

    def remember_written(
        self,
        counters: RequestCounters,
        mark: tuple[int, int],
        now: float,
        finished_jobs: tuple[RequestJob, ...] | None = None,
    ) -> None:
        """Keep the counters (and the finished jobs, when the write knew them all) a write of this process returned,
        called once it committed and announced its change (so that change was the last heard): unless another
        change of the request was heard since ``mark`` (it may have committed after the write, which would make
        these stale)."""
        epoch, heard = mark
        last, before = self._changes.get(counters.id, (0, 0))
        if epoch == self._epoch and before <= heard < last:
            self.remember_counters(counters, now, finished_jobs)

    async def eligibility(self, store: Store, request_id: str, now: float) -> Eligibility:
        """The workers that could serve a request, counted at most every ``ELIGIBILITY_MAX_AGE_SECONDS``."""
        return await self._eligibility.count(store, self.settings, request_id, now)

    def forget(self, request_id: str) -> None:
        """Drop a request's counters because it changed."""
        self._counters.pop(request_id, None)

    def on_change(self, change: Change) -> None:
        """A broker listener: a request that announced a change is read again on its next check."""
        self._heard += 1
        subject = change.subject
        if subject == EVERYTHING:
            self._counters.clear()
            self._forget_changes()
            return
        self._counters.pop(subject, None)
        if len(self._changes) >= self.MAX_CACHED_REQUESTS and subject not in self._changes:
            self._forget_changes()
        last, _ = self._changes.get(subject, (0, 0))
        self._changes[subject] = (self._heard, last)

    def _forget_changes(self) -> None:
        self._changes.clear()
        self._epoch += 1

    async def current(self, store: Store, now: float) -> QueueSnapshot:
        """The snapshot, retaken when it is older than ``snapshot_max_age``; while another call retakes it,
        the last one."""
        if now - self.snapshot.taken_at < self.snapshot_max_age:
            return self.snapshot
        if self._lock.locked() and self.snapshot.taken_at:
            return self.snapshot
        async with self._lock:
            if now - self.snapshot.taken_at >= self.snapshot_max_age:
                began = time.monotonic()
                self.snapshot = await take_snapshot(store, self.settings, now)
                took = time.monotonic() - began
                self.snapshot_max_age = max(SNAPSHOT_MAX_AGE_SECONDS, took / SNAPSHOT_DUTY)
        return self.snapshot


async def take_snapshot(store: Store, settings: Settings, now: float) -> QueueSnapshot:
    """Read the queue head to tail, keeping the requests live workers could take (`queue_for_live_workers`)."""
    since = live_since(settings, now)
    rows = await store.availability.queue_for_live_workers(since)
    places: dict[str, Place] = {}
    ahead = 0
    for position, (request_id, waiting, things) in enumerate(rows, start=1):
        places[request_id] = Place(position=position, things_ahead=ahead)
        ahead += waiting * things
    speed, threads = await store.availability.live_capacity(since, DEFAULT_WORKER_SPEED_PPS)
    return QueueSnapshot(taken_at=now, places=places, live_speed_pps=speed, live_threads=threads)


@dataclass(frozen=True)
class Progress:
    """Where a request stands: its place, its estimated wait, and who could serve it."""

    queue_position: int
    wait_time: int
    is_possible: bool
    eligible_workers: int = 0
    eligible_worker_threads: int = 0
    might_stall: bool = False


async def progress(store: Store, view: QueueView, request: RequestCounters, now: float) -> Progress:
    """Where a request stands: position among servable requests, estimated seconds to finish, the live workers
    that could serve it, and whether it might time out before one does (``might_stall``)."""
    if request.state != "queued":
        return Progress(queue_position=0, wait_time=0, is_possible=True)
    eligible = await view.eligibility(store, request.id, now)
    if request.n_processing == 0 and eligible.workers == 0:
        return Progress(queue_position=0, wait_time=0, is_possible=False, might_stall=request.n_waiting > 0)
    snapshot = await view.current(store, now)
    place = snapshot.places.get(request.id)
    own_things = (request.n_waiting + request.n_processing) * request.things
    ahead = place.things_ahead if place else 0
    speed = snapshot.live_speed_pps or DEFAULT_WORKER_SPEED_PPS
    position = place.position if place and request.n_waiting > 0 else 0
    return Progress(
        queue_position=position,
        wait_time=math.ceil((ahead + own_things) / speed),
        is_possible=True,
        eligible_workers=eligible.workers,
        eligible_worker_threads=eligible.threads,
        might_stall=request.n_processing == 0 and _might_stall(request, ahead, eligible, now),
    )


def _might_stall(request: RequestCounters, things_ahead: int, eligible: Eligibility, now: float) -> bool:
    """Whether a request with images waiting may time out before a worker that could serve it gets to it: the
    work ahead of it over the speed of its eligible workers alone, made pessimistic, reaches its time-out."""
    if request.n_waiting <= 0:
        return False
    first_start = things_ahead / (eligible.speed_pps or DEFAULT_WORKER_SPEED_PPS)
    pessimistic = first_start + max(STALL_MARGIN_SECONDS, first_start / 2)
    return pessimistic >= request.last_activity_at + QUEUE_TIMEOUT_SECONDS - now
