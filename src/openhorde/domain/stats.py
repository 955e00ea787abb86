"""Horde-wide figures: per-model workers and queue, overall performance, and images made over time.

Images made (``/stats/img/*``) are counters kept as work is done, never a scan of the jobs' history. A
delivered image is first added up in this process's memory (``ImageTally``, as usage figures are in
``domain/usage.py``: the submit is hot, and one row per model and minute would be locked by every submit of
that model), then written by the maintenance loop into buckets of a few sizes, one size per window:

=======  ===========  =================================================================
window   bucket       the figure counts the buckets that start within the window
=======  ===========  =================================================================
minute   10 seconds   so it covers the last 50 to 60 seconds
hour     1 minute     the last 59 to 60 minutes
day      1 hour       the last 23 to 24 hours
month    1 day        the last 29 to 30 days
total    all time     one row per model
=======  ===========  =================================================================

Buckets older than their window are deleted as they leave it, so the table holds at most a few hundred rows
per model. A process that stops uncleanly loses the few seconds of figures it had not written: statistics,
not money.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from openhorde.domain.queue.availability import DEFAULT_WORKER_SPEED_PPS
from openhorde.storage.repositories.stats import ImageCount, QueuedModel, ServedModel
from openhorde.storage.store import Store

PAST_MINUTE_SECONDS = 60
_NOT_SERVED = ServedModel(threads=0, speed_pps=0.0)
_NOT_QUEUED = QueuedModel(images=0, things=0)


@dataclass(frozen=True)
class ModelStatus:
    """One model's live workers (threads), their mean speed, and its queue."""

    name: str
    count: int
    performance: float
    queued: int
    jobs: int
    eta: int


async def model_statuses(store: Store, live_since: float, state: str = "all") -> list[ModelStatus]:
    """Figures for every model that is served or queued (every catalogue model for ``state='known'``)."""
    served = await store.stats.served_models(live_since, DEFAULT_WORKER_SPEED_PPS)
    queued = await store.stats.queued_models()
    if state == "known":
        names = set(await store.catalogue.names())
    elif state == "custom":
        names = (set(served) | set(queued)) - await store.catalogue.names()
    else:
        names = set(served) | set(queued)
    return [_status(name, served, queued) for name in sorted(names)]


async def model_status(store: Store, live_since: float, name: str) -> ModelStatus | None:
    """One model's figures, if the catalogue knows it or a live worker serves it or a request waits for it."""
    served = await store.stats.served_models(live_since, DEFAULT_WORKER_SPEED_PPS)
    queued = await store.stats.queued_models()
    if name in served or name in queued or name in await store.catalogue.names():
        return _status(name, served, queued)
    return None


def _status(name: str, served: dict[str, ServedModel], queued: dict[str, QueuedModel]) -> ModelStatus:
    workers = served.get(name, _NOT_SERVED)
    waiting = queued.get(name, _NOT_QUEUED)
    speed, threads = workers.speed_pps, workers.threads
    eta = math.ceil(waiting.things / (speed * threads)) if threads and speed else 0
    return ModelStatus(name=name, count=threads, performance=speed, queued=waiting.things, jobs=waiting.images, eta=eta)


@dataclass(frozen=True)
class Performance:
    """The horde's load right now."""

    queued_requests: int
    queued_images: int
    worker_count: int
    thread_count: int
    queued_megapixelsteps: float
    past_minute_megapixelsteps: float
    queued_forms: int = 0
    interrogator_count: int = 0
    interrogator_thread_count: int = 0


async def performance(store: Store, live_since: float, now: float) -> Performance:
    """Queue size, live image workers and alchemists, and the work done in the past minute."""
    load = await store.stats.load(live_since, now - PAST_MINUTE_SECONDS)
    return Performance(
        queued_requests=load.queued_requests,
        queued_images=load.queued_images,
        worker_count=load.worker_count,
        thread_count=load.thread_count,
        queued_megapixelsteps=round(load.queued_things / 1_000_000, 2),
        past_minute_megapixelsteps=round(load.done_things / 1_000_000, 2),
        queued_forms=load.queued_forms,
        interrogator_count=load.interrogator_count,
        interrogator_thread_count=load.interrogator_thread_count,
    )


@dataclass(frozen=True)
class Window:
    """A period of ``/stats/img/*``: its name, its length and the size of the buckets that count it (seconds)."""

    name: str
    length_seconds: int
    bucket_seconds: int


DAY_SECONDS = 86_400
WINDOWS = (
    Window("minute", 60, 10),
    Window("hour", 3_600, 60),
    Window("day", DAY_SECONDS, 3_600),
    Window("month", 30 * DAY_SECONDS, DAY_SECONDS),
)
"""Each bucket size divides the next, so an image's finest bucket says which bucket of every size it is in."""
ALL_TIME = "total"
_ALL_TIME_SPAN = 0
_FINEST_SECONDS = WINDOWS[0].bucket_seconds
_BY_BUCKET = {w.bucket_seconds: w for w in WINDOWS}
_MODEL_WINDOWS = tuple(w for w in WINDOWS if w.name in ("day", "month"))
"""``/stats/img/models`` reports the day, the month and all time."""


@dataclass
class ImageTally:
    """Images delivered (and their pixel-steps) per model and 10-second bucket, not yet written."""

    _pending: defaultdict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, model: str, pixelsteps: int, now: float) -> None:
        """Count one image of ``model`` delivered at ``now`` (epoch seconds)."""
        counts = self._pending[(model, int(now // _FINEST_SECONDS) * _FINEST_SECONDS)]
        counts[0] += 1
        counts[1] += pixelsteps

    async def flush(self, store: Store, now: float) -> int:
        """Add what was counted to the database's buckets (one statement) and delete the buckets that left their
        window (one more); how many images were written. With nothing counted it writes nothing: an idle horde's
        old buckets wait for the next image (reads skip them anyway)."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        buckets: defaultdict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
        for (model, start), (images, pixelsteps) in pending.items():
            keys = [(w.bucket_seconds, start // w.bucket_seconds * w.bucket_seconds, model) for w in WINDOWS]
            for key in (*keys, (_ALL_TIME_SPAN, 0, model)):
                buckets[key][0] += images
                buckets[key][1] += pixelsteps
        rows = [ImageCount(span, start, model, n, ps) for (span, start, model), (n, ps) in sorted(buckets.items())]
        await store.stats.add_image_counts(rows)
        await store.stats.prune_image_counts({w.bucket_seconds: int(now) - w.length_seconds for w in WINDOWS})
        return sum(images for images, _ in pending.values())


@dataclass(frozen=True)
class ImagesMade:
    """Images made in a period and their pixel-steps."""

    images: int
    pixelsteps: int


async def image_totals(store: Store, now: float) -> dict[str, ImagesMade]:
    """Images made and their pixel-steps in each window (``minute`` ... ``month``) and in all (``total``)."""
    counts = await store.stats.image_counts({w.bucket_seconds: int(now) - w.length_seconds for w in WINDOWS}, True)
    totals = {w.name: [0, 0] for w in WINDOWS} | {ALL_TIME: [0, 0]}
    for count in counts:
        sums = totals[_window_name(count.span_seconds)]
        sums[0] += count.images
        sums[1] += count.pixelsteps
    return {name: ImagesMade(images, pixelsteps) for name, (images, pixelsteps) in totals.items()}


async def image_models(store: Store, now: float, state: str = "all") -> dict[str, dict[str, int]]:
    """Images made per model in the day, the month and all time; ``state`` 'known' keeps the catalogue's models,
    'custom' the others, 'all' every model."""
    after = {w.bucket_seconds: int(now) - w.length_seconds for w in _MODEL_WINDOWS}
    counts = await store.stats.image_counts(after, True)
    known = await store.catalogue.names() if state in ("known", "custom") else frozenset()
    per_model: dict[str, dict[str, int]] = {name: {} for name in (*(w.name for w in _MODEL_WINDOWS), ALL_TIME)}
    for count in counts:
        if (state == "known" and count.model not in known) or (state == "custom" and count.model in known):
            continue
        period = per_model[_window_name(count.span_seconds)]
        period[count.model] = period.get(count.model, 0) + count.images
    return {name: dict(sorted(models.items())) for name, models in per_model.items()}


def _window_name(span_seconds: int) -> str:
    return ALL_TIME if span_seconds == _ALL_TIME_SPAN else _BY_BUCKET[span_seconds].name
