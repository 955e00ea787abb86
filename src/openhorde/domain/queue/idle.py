"""Idle pops answered from memory: a worker that found nothing finds nothing again until its models' queue changes.

Most pops of an idle horde find nothing, and asking the database again each second cannot find anything new
unless an image joined a queue the worker could serve. Every server process keeps, per model, the moment (a
sequence number) an image last joined its queue, fed by the request events all processes share (a new request,
or an image put back after a fault or an expired lease); requests that accept any model count for every
model. A pop that found nothing remembers the newest of those moments for the worker's models; the next pop of
the same worker with the same capabilities, if none of them moved, gets the same empty answer without a
query. ``MEMO_SECONDS`` bounds how long such an answer is trusted, in case an event was lost on the way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from openhorde.domain.queue.event_kinds import FAULT, QUEUED
from openhorde.storage.events import EVERYTHING, Change

MEMO_SECONDS = 10.0


@dataclass
class IdlePops:
    """This process's queue moments per model, and the empty answers they vouch for."""

    _sequence: int = 0
    _any_model: int = 0
    _by_model: dict[str, int] = field(default_factory=dict)
    _empty: dict[Hashable, tuple[int, dict[str, int], float]] = field(default_factory=dict)

    def moment_of(self, models: Sequence[str]) -> int:
        """The newest moment an image joined the queue of any of ``models`` (or of every model)."""
        return max(self._any_model, *(self._by_model.get(model, 0) for model in models))

    def joined(self, models: Sequence[str]) -> None:
        """Images joined the queues of ``models`` (none given: a request that accepts any model)."""
        self._sequence += 1
        if not models:
            self._any_model = self._sequence
        for model in models:
            self._by_model[model] = self._sequence

    def on_change(self, change: Change) -> None:
        """A broker listener: a queued request or a requeued image moves the moments of its models."""
        if change.subject == EVERYTHING:
            self._empty.clear()
        elif change.kind in (QUEUED, FAULT):
            self.joined(change.models)

    def remember_empty(
        self, worker: Hashable, models: Sequence[str], moment: int, skipped: dict[str, int], now: float
    ) -> None:
        """A pop of ``worker`` found nothing in the queues as they were at ``moment`` (read before its query)."""
        self._empty[worker] = (moment, skipped, now)

    def still_empty(self, worker: Hashable, models: Sequence[str], now: float) -> dict[str, int] | None:
        """The skip counts of the worker's last empty pop, if nothing has joined its models' queues since."""
        entry = self._empty.get(worker)
        if entry is None:
            return None
        moment, skipped, at = entry
        if now - at >= MEMO_SECONDS or self.moment_of(models) != moment:
            del self._empty[worker]
            return None
        return skipped
