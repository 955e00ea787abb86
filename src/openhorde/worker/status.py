"""What the worker has done so far (``WorkerStats``) and how it is shown: a live line on a terminal, else a log line.

The generation threads and the event loop both update ``WorkerStats``; a lock keeps its counters and
timeline consistent. The timeline (one entry per generation, ``time.perf_counter()`` seconds) is what
benchmarks read to see whether the GPU ever waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.text import Text

from openhorde.worker.logs import log_event

log = logging.getLogger("openhorde.worker.status")

RATE_WINDOW_SECONDS = 60.0
"""Images per second are averaged over this many seconds."""
LIVE_REFRESH_SECONDS = 0.5
DEFAULT_LOG_INTERVAL_SECONDS = 60.0
"""How often the status is logged when stdout is not a terminal."""


@dataclass(frozen=True)
class TimelineEntry:
    """One generation: which job, when it started and ended (``time.perf_counter()``), how many images."""

    job_id: str
    start: float
    end: float
    images: int
    model: str
    ok: bool = True


@dataclass(frozen=True)
class CurrentJob:
    """A job being generated right now."""

    job_id: str
    description: str
    started: float


@dataclass
class WorkerStats:
    """Counters and the generation timeline of one runner."""

    timeline: list[TimelineEntry] = field(default_factory=list)
    jobs_done: int = 0
    """Jobs whose images were all handed in."""
    images_done: int = 0
    """Images the horde accepted."""
    faulted: int = 0
    """Jobs reported as faulted (generation failed, bad payload, shutdown)."""
    dropped: int = 0
    """Images the horde no longer wanted (job aborted or already submitted) or that could not be delivered."""
    kudos: float = 0.0
    started_at: float = field(default_factory=time.perf_counter)
    current: dict[str, CurrentJob] = field(default_factory=dict)
    """Jobs in generation, by thread name."""
    _recent: deque[tuple[float, int]] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def generation_started(self, thread: str, job_id: str, description: str) -> float:
        """Note that ``thread`` began ``job_id``; returns the start time."""
        start = time.perf_counter()
        with self._lock:
            self.current[thread] = CurrentJob(job_id, description, start)
        return start

    def generation_finished(self, thread: str, entry: TimelineEntry) -> None:
        """Note the end of a generation (successful or not)."""
        with self._lock:
            self.current.pop(thread, None)
            self.timeline.append(entry)
            if entry.ok:
                self._recent.append((entry.end, entry.images))

    def image_delivered(self, reward: float) -> None:
        """The horde accepted an image and paid ``reward`` kudos."""
        with self._lock:
            self.images_done += 1
            self.kudos += reward

    def job_finished(self, faulted: bool) -> None:
        """A job's delivery is over: all its images handed in, or it was reported faulted."""
        with self._lock:
            if faulted:
                self.faulted += 1
            else:
                self.jobs_done += 1

    def image_dropped(self) -> None:
        """An image was not accepted (job gone) or could not be delivered."""
        with self._lock:
            self.dropped += 1

    def images_per_second(self, now: float | None = None) -> float:
        """Images generated per second over the last minute (or since start, if shorter)."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW_SECONDS:
                self._recent.popleft()
            images = sum(count for _, count in self._recent)
        span = min(RATE_WINDOW_SECONDS, max(now - self.started_at, 1e-9))
        return images / span

    def line(self) -> str:
        """One status line: jobs, rate, kudos and what is being generated."""
        with self._lock:
            current = ", ".join(job.description for job in self.current.values()) or "idle"
            done, faulted, kudos = self.jobs_done, self.faulted, self.kudos
        return (
            f"jobs {done} (faulted {faulted}) | {self.images_per_second():.2f} img/s | "
            f"kudos {kudos:.1f} | now: {current}"
        )


class StatusDisplay:
    """Shows ``stats`` until stopped: a live line (≤ 2 refreshes/s) on a terminal, else a periodic log line."""

    def __init__(
        self,
        stats: WorkerStats,
        console: Console | None = None,
        log_interval_s: float = DEFAULT_LOG_INTERVAL_SECONDS,
    ) -> None:
        self.stats = stats
        self.console = console or Console()
        self.log_interval_s = log_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop`` is set."""
        if self.console.is_terminal:
            await self._live(stop)
        else:
            await self._periodic(stop)

    async def _live(self, stop: asyncio.Event) -> None:
        with Live(Text(self.stats.line()), console=self.console, auto_refresh=False, transient=True) as live:
            while not await _wait(stop, LIVE_REFRESH_SECONDS):
                live.update(Text(self.stats.line()), refresh=True)

    async def _periodic(self, stop: asyncio.Event) -> None:
        while not await _wait(stop, self.log_interval_s):
            log_event(log, logging.INFO, "status", self.stats.line())


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
