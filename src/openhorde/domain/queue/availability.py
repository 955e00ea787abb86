"""Honest numbers: can anyone serve a request, where is it in the queue, how long will it take.

Queue positions and waits count only requests that live workers could take (they serve one
of its models and take its size). They come from a snapshot of the queue taken at most once
per ``SNAPSHOT_MAX_AGE_SECONDS`` per process (one query), so a client polling
``/generate/check`` costs a dictionary lookup, not a scan. A deep queue makes the snapshot
slow (about a second at 100,000 queued), so it is then taken less often (at most
``SNAPSHOT_DUTY`` of the time), and while one call takes it the others answer from the last.

A request's own counters (waiting, processing, finished...) are kept too, until an event says the request
changed (every change announces one, in whichever process made it) or ``check_cache_seconds`` passes, so
checking a request nothing happened to reads nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from openhorde.config import Settings
from openhorde.storage.events import EVERYTHING, Change
from openhorde.storage.repositories.statuses import RequestCounters
from openhorde.storage.store import Store

SNAPSHOT_MAX_AGE_SECONDS = 1.0
SNAPSHOT_DUTY = 0.2
"""The largest share of time one process spends taking snapshots: one that took 1 s is kept 5 s."""
DEFAULT_WORKER_SPEED_PPS = 1_000_000.0
"""Speed assumed for a worker that has not delivered an image yet (pixel-steps per second)."""


async def request_is_possible(store: Store, settings: Settings, request_id: str, now: float) -> bool:
    """Whether a worker seen in the last ``worker_stale_seconds`` could serve this request."""
    return await store.availability.servable(request_id, now - settings.queue.worker_stale_seconds)


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

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.snapshot = QueueSnapshot()
        self.snapshot_max_age = SNAPSHOT_MAX_AGE_SECONDS
        self._lock = asyncio.Lock()
        self._counters: dict[str, tuple[float, RequestCounters]] = {}

    def cached_counters(self, request_id: str, now: float) -> RequestCounters | None:
        """The counters of a request read less than ``check_cache_seconds`` ago, unless it changed since."""
        entry = self._counters.get(request_id)
        if entry is None or now - entry[0] >= self.settings.queue.check_cache_seconds:
            return None
        return entry[1]

    def remember_counters(self, counters: RequestCounters, now: float) -> None:
        """Keep a request's counters for the next checks (when caching is on)."""
        if self.settings.queue.check_cache_seconds <= 0:
            return
        if len(self._counters) >= self.MAX_CACHED_REQUESTS:
            horizon = now - self.settings.queue.check_cache_seconds
            self._counters = {key: value for key, value in self._counters.items() if value[0] > horizon}
        self._counters[counters.id] = (now, counters)

    def forget(self, request_id: str) -> None:
        """Drop a request's counters because it changed."""
        self._counters.pop(request_id, None)

    def on_change(self, change: Change) -> None:
        """A broker listener: a request that announced a change is read again on its next check."""
        if change.subject == EVERYTHING:
            self._counters.clear()
        else:
            self._counters.pop(change.subject, None)

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
    since = now - settings.queue.worker_stale_seconds
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
    """The ``queue_position``, ``wait_time`` and ``is_possible`` of a request."""

    queue_position: int
    wait_time: int
    is_possible: bool


async def progress(store: Store, view: QueueView, request: RequestCounters, now: float) -> Progress:
    """Where a request stands: position among servable requests and estimated seconds to finish."""
    if request.state != "queued":
        return Progress(queue_position=0, wait_time=0, is_possible=True)
    snapshot = await view.current(store, now)
    place = snapshot.places.get(request.id)
    possible = request.n_processing > 0 or place is not None
    if place is None and request.n_waiting > 0:
        possible = possible or await request_is_possible(store, view.settings, request.id, now)
    if not possible:
        return Progress(queue_position=0, wait_time=0, is_possible=False)
    own_things = (request.n_waiting + request.n_processing) * request.things
    things = (place.things_ahead if place else 0) + own_things
    speed = snapshot.live_speed_pps or DEFAULT_WORKER_SPEED_PPS
    position = place.position if place and request.n_waiting > 0 else 0
    return Progress(queue_position=position, wait_time=math.ceil(things / speed), is_possible=True)
