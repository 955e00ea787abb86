"""CPU time of the server's process tree, of PostgreSQL and of the driver itself, read from ``/proc``.

CPU per job is the figure the targets are written in, and on a small machine the driver, the server and
PostgreSQL share the cores: so all three are read at the same instants, before and after a window.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.stats import Stats

CLK_TCK = os.sysconf("SC_CLK_TCK")

CpuFigures = dict[str, float | None]


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this module needs."""

    pid: int
    comm: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: reaped children count towards their parent


def parse_proc_stat(pid: int, text: str) -> ProcStat:
    """Parse a /proc/<pid>/stat line (comm may contain spaces or parens)."""
    lpar = text.index("(")
    rpar = text.rindex(")")
    rest = text[rpar + 2 :].split()
    # rest[0] is field 3 (state); utime..cstime are fields 14..17
    ticks = sum(int(v) for v in rest[11:15])
    return ProcStat(pid, text[lpar + 1 : rpar], int(rest[1]), ticks)


def read_proc_stat(pid: int) -> ProcStat | None:
    """Read one process's stat, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return parse_proc_stat(pid, text)


def all_processes() -> list[ProcStat]:
    """Stat of every process currently visible in /proc."""
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_proc_stat(int(entry))
            if stat is not None:
                procs.append(stat)
    return procs


def tree_seconds(root: int, procs: list[ProcStat]) -> float | None:
    """CPU seconds of a process and all its live descendants (``serve --workers N`` forks N children)."""
    by_parent: dict[int, list[ProcStat]] = {}
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    if root not in by_pid:
        return None
    total = 0
    stack = [by_pid[root]]
    for _ in range(len(procs)):  # bounded: a tree has at most that many nodes
        if not stack:
            break
        proc = stack.pop()
        total += proc.ticks
        stack.extend(by_parent.get(proc.pid, []))
    return total / CLK_TCK


def postgres_seconds(procs: list[ProcStat]) -> float:
    """CPU seconds of all processes named ``postgres``: the backends, and through the postmaster's
    cutime/cstime the ones already reaped. Includes any other PostgreSQL activity on the machine."""
    return sum(p.ticks for p in procs if p.comm == "postgres") / CLK_TCK


def driver_seconds() -> float:
    """CPU seconds used by this driver process so far."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters at one instant (seconds)."""

    wall: float
    server: float | None
    db: float | None
    driver: float


@dataclass(frozen=True)
class CpuProbe:
    """What to measure: the server's process tree (when its pid is known) and/or PostgreSQL."""

    server_pid: int | None
    postgres: bool

    def snapshot(self) -> CpuSnapshot:
        """Read all counters now."""
        procs = all_processes()
        server = None
        if self.server_pid is not None:
            server = tree_seconds(self.server_pid, procs)
        db = postgres_seconds(procs) if self.postgres else None
        return CpuSnapshot(time.monotonic(), server, db, driver_seconds())


def per_unit_ms(before: float | None, after: float | None, units: int) -> float | None:
    """CPU milliseconds per unit (job or call) between two counter readings."""
    if before is None or after is None or units == 0:
        return None
    return round((after - before) * 1000.0 / units, 3)


def cpu_per_unit(before: CpuSnapshot, after: CpuSnapshot, units: int) -> CpuFigures:
    """Server, DB, server+DB and driver CPU ms per unit (a completed job, or one call)."""
    server = per_unit_ms(before.server, after.server, units)
    db = per_unit_ms(before.db, after.db, units)
    total = None
    if server is not None:
        total = round(server + (db or 0.0), 3)  # SQLite: the database is inside the server
    return {
        "server": server,
        "db": db,
        "total": total,
        "driver": per_unit_ms(before.driver, after.driver, units),
    }


def cores_used(before: CpuSnapshot, after: CpuSnapshot) -> CpuFigures:
    """Average cores busy during the window: CPU seconds / wall seconds. A server far below one core while
    latency is high is waiting (locks, I/O, the GIL of another process), not computing."""
    wall = after.wall - before.wall

    def share(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or wall <= 0 else round((b - a) / wall, 3)

    return {
        "server": share(before.server, after.server),
        "db": share(before.db, after.db),
        "driver": share(before.driver, after.driver),
    }


async def measured_window(
    stats: Stats, probe: CpuProbe, warmup: float, seconds: float
) -> tuple[CpuSnapshot, CpuSnapshot]:
    """Let whatever runs warm up for ``warmup`` seconds unrecorded, then record ``seconds`` into ``stats``; the CPU
    counters at both ends of the recorded window."""
    stats.recording = False
    await asyncio.sleep(warmup)
    stats.start_window()
    before = probe.snapshot()
    await asyncio.sleep(seconds)
    after = probe.snapshot()
    stats.recording = False
    return before, after
