"""Horde-wide figures: per-model workers and queue, and overall performance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from openhorde.domain.queue.availability import DEFAULT_WORKER_SPEED_PPS
from openhorde.storage.repositories.stats import QueuedModel, ServedModel
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
