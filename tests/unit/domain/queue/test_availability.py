"""The per-process check-answer cache of ``QueueView``."""

from __future__ import annotations

from openhorde.config import Settings
from openhorde.domain.queue.availability import QueueView


def _view(seconds: float) -> QueueView:
    return QueueView(Settings(check_cache_seconds=seconds, _env_file=None))  # type: ignore[call-arg]


def test_a_check_answer_is_reused_until_it_expires() -> None:
    view = _view(1.0)
    view.remember_check("r1", "answer", now=100.0)
    assert view.cached_check("r1", now=100.5) == "answer"
    assert view.cached_check("r1", now=101.0) is None
    assert view.cached_check("other", now=100.5) is None


def test_forgetting_drops_the_answer_at_once() -> None:
    view = _view(1.0)
    view.remember_check("r1", "answer", now=100.0)
    view.forget_check("r1")
    assert view.cached_check("r1", now=100.1) is None


def test_zero_seconds_turns_the_cache_off() -> None:
    view = _view(0)
    view.remember_check("r1", "answer", now=100.0)
    assert view.cached_check("r1", now=100.0) is None


def test_the_cache_stays_bounded() -> None:
    view = _view(1.0)
    for index in range(QueueView.MAX_CACHED_CHECKS):
        view.remember_check(f"old{index}", "answer", now=100.0)
    view.remember_check("new", "answer", now=200.0)
    assert view.cached_check("new", now=200.1) == "answer"
    assert view.cached_check("old0", now=200.1) is None
    assert len(view._checks) == 1
