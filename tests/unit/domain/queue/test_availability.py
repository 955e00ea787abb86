"""The per-process cache of requests' counters in ``QueueView``: kept until the request announces a change, and
filled by a write that returned them when no other change of the request was heard while it ran."""

from __future__ import annotations

from openhorde.config import Settings
from openhorde.domain.queue.availability import EligibilityMemo, QueueView
from openhorde.storage.events import Change
from openhorde.storage.repositories.statuses import RequestCounters


def _view(seconds: float) -> QueueView:
    return QueueView(Settings(check_cache_seconds=seconds, _env_file=None), EligibilityMemo())  # type: ignore[call-arg]


def _counters(request_id: str, finished: int = 0) -> RequestCounters:
    return RequestCounters(request_id, "queued", 1, 0, finished, 0, 4096, 0, False, True, None, 0.0)


def test_counters_are_reused_until_they_expire() -> None:
    view = _view(10.0)
    view.remember_counters(_counters("r1"), now=100.0)
    assert view.cached_counters("r1", now=109.0) == _counters("r1")
    assert view.cached_counters("r1", now=110.0) is None
    assert view.cached_counters("other", now=100.5) is None


def test_an_event_of_the_request_drops_its_counters_and_others_keep_theirs() -> None:
    view = _view(10.0)
    view.remember_counters(_counters("r1"), now=100.0)
    view.remember_counters(_counters("r2"), now=100.0)
    view.on_change(Change("r1", "image", "job-1"))
    assert view.cached_counters("r1", now=100.1) is None
    assert view.cached_counters("r2", now=100.1) == _counters("r2")
    view.forget("r2")
    assert view.cached_counters("r2", now=100.1) is None


def test_zero_seconds_turns_the_cache_off() -> None:
    view = _view(0)
    view.remember_counters(_counters("r1"), now=100.0)
    assert view.cached_counters("r1", now=100.0) is None


def test_the_cache_stays_bounded() -> None:
    view = _view(1.0)
    for index in range(QueueView.MAX_CACHED_REQUESTS):
        view.remember_counters(_counters(f"old{index}"), now=100.0)
    view.remember_counters(_counters("new"), now=200.0)
    assert view.cached_counters("new", now=200.1) == _counters("new")
    assert view.cached_counters("old0", now=200.1) is None
    assert len(view._counters) == 1


def test_a_write_keeps_the_counters_it_returned_when_its_own_change_was_the_only_one_heard() -> None:
    view = _view(10.0)
    view.on_change(Change("r1", "queued"))  # before the write: its counters include it
    mark = view.mark()
    view.on_change(Change("r2", "image", "job-2"))  # another request's
    view.on_change(Change("r1", "image", "job-1"))  # the write's own, announced as it committed
    view.remember_written(_counters("r1", finished=1), mark, now=100.0)
    assert view.cached_counters("r1", now=100.1) == _counters("r1", finished=1)


def test_a_write_keeps_nothing_when_another_change_of_its_request_was_heard_while_it_ran() -> None:
    view = _view(10.0)
    mark = view.mark()
    view.on_change(Change("r1", "started", "job-2"))  # another process's: it may have committed after the write
    view.on_change(Change("r1", "image", "job-1"))
    view.remember_written(_counters("r1", finished=1), mark, now=100.0)
    assert view.cached_counters("r1", now=100.1) is None


def test_a_write_keeps_nothing_without_its_own_change_or_after_the_changes_were_forgotten() -> None:
    view = _view(10.0)
    mark = view.mark()
    view.remember_written(_counters("r1"), mark, now=100.0)  # no change heard: no broker delivered it
    assert view.cached_counters("r1", now=100.1) is None
    mark = view.mark()
    view.on_change(Change("*", "resync"))
    view.on_change(Change("r1", "image", "job-1"))
    view.remember_written(_counters("r1"), mark, now=100.0)  # events may have been lost in between
    assert view.cached_counters("r1", now=100.1) is None
