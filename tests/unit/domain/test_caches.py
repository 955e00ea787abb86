"""The in-memory caches forget everything on ``RESYNC``: events from other processes may have been lost."""

from __future__ import annotations

from openhorde.config import Settings
from openhorde.domain.accounts import KeyCache
from openhorde.domain.catalogue import CatalogueNames
from openhorde.domain.queue.availability import EligibilityMemo, QueueView
from openhorde.domain.queue.idle import IdlePops
from openhorde.domain.worker_cache import WorkerCache, WorkerState
from openhorde.storage.events import RESYNC, Change
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.statuses import RequestCounters
from openhorde.storage.repositories.workers import WorkerCapabilities


def _account(user_id: int) -> Account:
    flags = dict.fromkeys([name for name in Account.__dataclass_fields__ if name.startswith("is_")], False)
    return Account(
        id=user_id,
        username="someone",
        created_at=0.0,
        concurrency=30,
        worker_invited=0,
        public_workers=False,
        contact=None,
        admin_comment=None,
        **flags,
    )


def test_an_unrelated_change_keeps_the_caches_and_resync_empties_them() -> None:
    keys = KeyCache()
    keys.put("hash", _account(7), now=100.0)
    workers = WorkerCache()
    workers.put(WorkerState("w1", 7, "gpu", "digest", 100.0, WorkerCapabilities(), False, False, None, None))
    idle = IdlePops()
    idle.remember_empty("w1", ["model"], idle.moment_of(["model"]), {}, now=100.0)
    catalogue = CatalogueNames()
    catalogue.names = {"model"}

    unrelated = Change("some-request", "started", "job")
    for listener in (keys.on_change, workers.on_change, idle.on_change, catalogue.on_change):
        listener(unrelated)
    assert keys.get("hash", now=101.0) is not None and workers.get("gpu") is not None
    assert idle.still_empty("w1", ["model"], now=101.0) == {} and catalogue.names == {"model"}

    for listener in (keys.on_change, workers.on_change, idle.on_change, catalogue.on_change):
        listener(RESYNC)
    assert keys.get("hash", now=101.0) is None and workers.get("gpu") is None
    assert idle.still_empty("w1", ["model"], now=101.0) is None and catalogue.names is None


def test_resync_forgets_every_remembered_check() -> None:
    view = QueueView(Settings(check_cache_seconds=60), EligibilityMemo())
    counters = RequestCounters("r1", "queued", 1, 0, 0, 0, 4096, 0, False, True, None, 0.0)
    view.remember_counters(counters, now=100.0)
    assert view.cached_counters("r1", now=101.0) is not None
    view.on_change(RESYNC)
    assert view.cached_counters("r1", now=101.0) is None
