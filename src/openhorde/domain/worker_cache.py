"""Checked-in workers kept in memory by each server process, and the announcement that drops one."""

from __future__ import annotations

from dataclasses import dataclass, field

from openhorde.storage.events import EVERYTHING, Change
from openhorde.storage.repositories.workers import WorkerCapabilities
from openhorde.storage.store import Store

WORKER_SUBJECT_PREFIX = "worker:"


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A checked-in worker as its pops need it: what it serves and may do, and whether it may pop at all.

    Kept per process in a ``WorkerCache`` between writes of the worker's row, so a worker polling every second
    costs no read: its row is written at most once per ``check_in_debounce_seconds`` (or when it declares other
    capabilities), and whatever else changes it (its owner, a moderator, automatic maintenance, a message)
    announces it with ``changed``.
    """

    id: str
    user_id: int
    name: str
    digest: str
    written_at: float
    capabilities: WorkerCapabilities
    paused: bool
    maintenance: bool
    maintenance_msg: str | None
    speed_pps: float | None
    worker_type: str = "image"


@dataclass
class WorkerCache:
    """This process's checked-in workers by name, with the messages each pop shows them (by worker id)."""

    _by_name: dict[str, WorkerState] = field(default_factory=dict)
    messages: dict[str, tuple[object, ...]] = field(default_factory=dict)
    """Owned by ``moderation/worker_messages.py``: a worker's unexpired messages, read once per change."""

    def get(self, name: str) -> WorkerState | None:
        """The cached state of the worker called ``name``."""
        return self._by_name.get(name)

    def put(self, state: WorkerState) -> None:
        """Remember a worker just read or written."""
        self._by_name[state.name] = state

    def forget(self, worker_id: str) -> None:
        """Drop a worker (and its messages) so the next pop reads it again."""
        self.messages.pop(worker_id, None)
        stale = [name for name, state in self._by_name.items() if state.id == worker_id]
        for name in stale:
            del self._by_name[name]

    def clear(self) -> None:
        """Forget every worker."""
        self._by_name.clear()
        self.messages.clear()

    def on_change(self, change: Change) -> None:
        """A broker listener: forget workers announced as changed, in this process or another."""
        if change.subject == EVERYTHING:
            self._by_name.clear()
            self.messages.clear()
        elif change.subject.startswith(WORKER_SUBJECT_PREFIX):
            self.forget(change.subject.removeprefix(WORKER_SUBJECT_PREFIX))


def changed(store: Store, worker_id: str) -> None:
    """Announce that a worker's settings, state or messages changed: every process reads it again."""
    store.announce(Change(f"{WORKER_SUBJECT_PREFIX}{worker_id}", "changed"))
