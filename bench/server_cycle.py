"""Load driver for an OpenHorde server: job-cycle throughput, latency and CPU cost.

What it measures
----------------
Phase 1, "cycle".  ``--workers`` simulated workers loop over
``POST /generate/pop``; when a job comes back they PUT a tiny prebuilt WebP to
the presigned ``r2_upload`` URL and ``POST /generate/submit`` it, otherwise they
sleep ``--idle-sleep`` and pop again.  ``--clients`` simulated clients (each a
registered user) keep ``--inflight`` requests each in flight: ``POST
/generate/async``, poll ``GET /generate/check/{id}`` every ``--check-interval``
until ``done``, one ``GET /generate/status/{id}``, then the next request.  After
``--warmup`` seconds the driver measures for ``--duration`` seconds:

* latency percentiles (p50/p95/p99/max, ms) per endpoint: ``async``,
  ``pop(job)`` (pop that returned a job), ``pop(empty)``, ``upload`` (the PUT),
  ``submit``, ``check``, ``status``, plus ``e2e`` (async -> done, client view);
* completed jobs per second: submits answered 2xx / measured seconds;
* CPU per completed job, read from ``/proc/<pid>/stat`` (utime+stime, children
  included) before and after the window: the server process tree, and for
  PostgreSQL every process whose ``comm`` is ``postgres`` (the backends; for
  SQLite the database runs inside the server process).  The driver's own CPU is
  shown too, because it competes with the server for the same cores, and so
  is the average number of cores each of them kept busy;
* error counts by endpoint, HTTP status and ``rc`` (whole run, warm-up included).

Phase 2, "deep queue".  Enqueue ``--queued`` one-image requests (at most 25 per
user, the server allows 30 queued images per user) with no worker popping,
then measure pop latency against that queue:

* ``no-match``: a worker whose ``max_pixels`` is too small for every queued
  request pops ``--deep-nomatch`` times (empty pops that must scan the queue);
* ``sequential``: one worker pops ``--deep-pops`` jobs, uploading and
  submitting each (so the queue drains slowly);
* ``concurrent``: ``--deep-workers`` workers share another ``--deep-pops`` pops.

Between the phases, "endpoint cost" (``--skip-costs`` to skip): four lanes call
one endpoint back to back for ``--cost-seconds`` each -- heartbeat, check,
status, an empty pop -- and run a bare cycle (async, pop, upload, submit, no
polling); printed as server/DB CPU ms per call (per job for the cycle).

How to run
----------
From the repository root (PostgreSQL listening on 127.0.0.1:5432 as user
``postgres`` for ``--db postgres``)::

    .venv/bin/python bench/server_cycle.py --db sqlite --duration 5 --queued 1000
    .venv/bin/python bench/server_cycle.py --db postgres --workers 8
    .venv/bin/python bench/server_cycle.py --db postgres --workers 32 --skip-deep
    .venv/bin/python bench/server_cycle.py --url http://127.0.0.1:7001 \\
        --server-pid 1234 --db postgres

Without ``--url`` the driver starts ``openhorde serve`` (found next to
``sys.executable``) on a free loopback port with a temporary data directory;
for ``--db postgres`` it creates a fresh database ``bench_<random>`` and drops it
at the end.  Everything stays on loopback and every loop is bounded in count
and time.  Requests go through a minimal built-in HTTP/1.1 keep-alive client
(``--http raw``, about 0.1 ms of driver CPU per call); ``--http httpx`` uses
httpx instead, which costs 1.5-2 ms per call and on a 2-core machine caps the
throughput the driver can generate well below 100 jobs/s.  Human-readable tables are printed per phase; the last line is
``RESULT {json}`` for collection by scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import io
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from PIL import Image

API = "/api/v2"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
MODEL = "stable_diffusion"
BRIDGE_AGENT = "openhorde-bench:1:loopback"
CLIENT_AGENT = "openhorde-bench:1:loopback"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_PIXELS = 512 * 512
NOMATCH_MAX_PIXELS = 256 * 256  # smaller than every queued 512x512 request
MAX_LOOP_ITERATIONS = 1_000_000  # hard cap on any loop, on top of its deadline
PER_USER_REQUESTS = 25  # stays below the server's 30 queued images per user
WORKERS_PER_OWNER = 3  # untrusted users may only own a few workers
HTTP_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.2
STOP_GRACE_S = 3.0
REGISTER_CONCURRENCY = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENDPOINT_ORDER = (
    "register",
    "async",
    "pop(job)",
    "pop(empty)",
    "upload",
    "submit",
    "check",
    "status",
    "e2e",
    "cancel",
)


# --------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Config:
    """Command-line settings."""

    db: str
    workers: int
    clients: int
    inflight: int
    duration: float
    warmup: float
    idle_sleep: float
    check_interval: float
    request_timeout: float
    queued: int
    deep_pops: int
    deep_nomatch: int
    deep_workers: int
    enqueue_concurrency: int
    phase_timeout: float
    startup_timeout: float
    skip_cycle: bool
    skip_deep: bool
    url: str | None
    server_pid: int | None
    server_log: Path | None
    uvloop: bool
    http: str
    show_errors: int
    skip_costs: bool
    cost_seconds: float


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    value = float(text)
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        description="Measure an OpenHorde server over loopback HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--workers", type=positive_int, default=8)
    p.add_argument("--clients", type=positive_int, default=8)
    p.add_argument(
        "--inflight",
        type=positive_int,
        default=4,
        help="requests each client keeps in flight (at most 25)",
    )
    p.add_argument("--duration", type=non_negative_float, default=20.0)
    p.add_argument("--warmup", type=non_negative_float, default=3.0)
    p.add_argument("--idle-sleep", type=non_negative_float, default=0.05)
    p.add_argument("--check-interval", type=non_negative_float, default=0.1)
    p.add_argument(
        "--request-timeout",
        type=non_negative_float,
        default=120.0,
        help="client gives up polling a request after this many seconds",
    )
    p.add_argument("--queued", type=positive_int, default=10_000)
    p.add_argument("--deep-pops", type=positive_int, default=500)
    p.add_argument("--deep-nomatch", type=positive_int, default=200)
    p.add_argument("--deep-workers", type=positive_int, default=8)
    p.add_argument("--enqueue-concurrency", type=positive_int, default=32)
    p.add_argument(
        "--phase-timeout",
        type=non_negative_float,
        default=600.0,
        help="upper bound on each deep-queue step (enqueue, pops)",
    )
    p.add_argument("--startup-timeout", type=non_negative_float, default=60.0)
    p.add_argument("--skip-cycle", action="store_true")
    p.add_argument("--skip-deep", action="store_true")
    p.add_argument("--skip-costs", action="store_true", help="skip the per-endpoint cost step")
    p.add_argument("--cost-seconds", type=non_negative_float, default=3.0)
    p.add_argument("--url", help="use this already-running loopback server")
    p.add_argument("--server-pid", type=int, help="server pid for CPU with --url")
    p.add_argument("--server-log", type=Path, help="copy the server log here")
    p.add_argument(
        "--show-errors",
        type=int,
        default=5,
        metavar="N",
        help="print the first N failed calls in full (request body and response)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop")
    p.add_argument(
        "--http",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP client: built-in lean HTTP/1.1 (raw) or httpx (~20x more driver CPU)",
    )
    return p


def parse_config(argv: list[str] | None = None) -> Config:
    """Parse and sanity-check the command line."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.inflight > PER_USER_REQUESTS:
        parser.error(f"--inflight must be <= {PER_USER_REQUESTS}")
    if ns.url is not None and not is_loopback(ns.url):
        parser.error("--url must point at a loopback address")
    return Config(
        db=ns.db,
        workers=ns.workers,
        clients=ns.clients,
        inflight=ns.inflight,
        duration=ns.duration,
        warmup=ns.warmup,
        idle_sleep=ns.idle_sleep,
        check_interval=ns.check_interval,
        request_timeout=ns.request_timeout,
        queued=ns.queued,
        deep_pops=ns.deep_pops,
        deep_nomatch=ns.deep_nomatch,
        deep_workers=ns.deep_workers,
        enqueue_concurrency=ns.enqueue_concurrency,
        phase_timeout=ns.phase_timeout,
        startup_timeout=ns.startup_timeout,
        skip_cycle=ns.skip_cycle,
        skip_deep=ns.skip_deep,
        url=ns.url.rstrip("/") if ns.url else None,
        server_pid=ns.server_pid,
        server_log=ns.server_log,
        uvloop=not ns.no_uvloop,
        http=ns.http,
        show_errors=ns.show_errors,
        skip_costs=ns.skip_costs,
        cost_seconds=ns.cost_seconds,
    )


def is_loopback(url: str) -> bool:
    """True when the URL's host is a loopback address."""
    return urlsplit(url).hostname in LOOPBACK_HOSTS


# --------------------------------------------------------------------------
# statistics


@dataclass
class Stats:
    """Latency samples (ms) per endpoint, error counts and completed jobs."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    recording: bool = True
    last_done: str | None = None  # a finished request, for the image round trip

    def add(self, name: str, ms: float) -> None:
        """Record one successful call's latency (only inside the window)."""
        if self.recording:
            self.samples.setdefault(name, []).append(ms)

    def fail(self, name: str, what: str) -> None:
        """Count one failed call (always, warm-up included)."""
        self.errors[f"{name} {what}"] += 1

    def job_done(self) -> None:
        """Count one job submitted successfully (only inside the window)."""
        if self.recording:
            self.completed += 1

    def start_window(self) -> None:
        """Forget warm-up samples and start recording."""
        self.samples.clear()
        self.completed = 0
        self.recording = True


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile of an ascending list (q in [0, 1])."""
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize_samples(values: list[float]) -> dict[str, float | int]:
    """count, p50, p95, p99 and max of latency samples, in ms."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 0.50), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2),
    }


def endpoint_names(stats: Stats) -> list[str]:
    """Endpoints with samples, in a stable, readable order."""
    known = [n for n in ENDPOINT_ORDER if n in stats.samples]
    return known + sorted(set(stats.samples) - set(known))


def latency_summary(stats: Stats) -> dict[str, dict[str, float | int]]:
    """Per-endpoint latency summary of all endpoints with samples."""
    return {n: summarize_samples(stats.samples[n]) for n in endpoint_names(stats)}


def print_latency_table(stats: Stats) -> None:
    """Print one row per endpoint: count and percentiles in ms."""
    print(f"  {'endpoint':<12}{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name, row in latency_summary(stats).items():
        print(f"  {name:<12}{row['count']:>8}{row['p50']:>9.1f}{row['p95']:>9.1f}{row['p99']:>9.1f}{row['max']:>9.1f}")


def print_errors(stats: Stats) -> None:
    """Print error counts, or 'none'."""
    if not stats.errors:
        print("  errors: none")
        return
    print("  errors (endpoint status rc: count):")
    for key, count in sorted(stats.errors.items()):
        print(f"    {key}: {count}")


# --------------------------------------------------------------------------
# CPU accounting from /proc


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this driver needs."""

    pid: int
    comm: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime


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
    """CPU seconds of a process and all its live descendants."""
    by_parent: dict[int, list[ProcStat]] = {}
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    if root not in by_pid:
        return None
    total = 0
    stack = [by_pid[root]]
    for _ in range(len(procs)):
        if not stack:
            break
        proc = stack.pop()
        total += proc.ticks
        stack.extend(by_parent.get(proc.pid, []))
    return total / CLK_TCK


def postgres_seconds(procs: list[ProcStat]) -> float:
    """CPU seconds of all processes named ``postgres`` (reaped ones included
    through the postmaster's cutime/cstime)."""
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
    """What to measure: the server's process tree and/or postgres."""

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


def per_job_ms(before: float | None, after: float | None, jobs: int) -> float | None:
    """CPU milliseconds per job between two counter readings."""
    if before is None or after is None or jobs == 0:
        return None
    return round((after - before) * 1000.0 / jobs, 3)


def cpu_per_job(before: CpuSnapshot, after: CpuSnapshot, jobs: int) -> dict[str, float | None]:
    """Server, DB, server+DB and driver CPU ms per completed job."""
    server = per_job_ms(before.server, after.server, jobs)
    db = per_job_ms(before.db, after.db, jobs)
    total = None
    if server is not None:
        total = round(server + (db or 0.0), 3)
    return {
        "server": server,
        "db": db,
        "total": total,
        "driver": per_job_ms(before.driver, after.driver, jobs),
    }


def cores_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float | None]:
    """Average cores busy during the window: CPU seconds / wall seconds."""
    wall = after.wall - before.wall

    def share(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or wall <= 0 else round((b - a) / wall, 3)

    return {
        "server": share(before.server, after.server),
        "db": share(before.db, after.db),
        "driver": share(before.driver, after.driver),
    }


def fmt_num(value: float | None) -> str:
    """A number for humans, 'n/a' when unknown."""
    return "n/a" if value is None else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    """A CPU figure for humans."""
    return "n/a" if value is None else f"{value:.2f} ms"


# --------------------------------------------------------------------------
# HTTP


class TransportError(Exception):
    """A request failed below HTTP (connect, reset, timeout, bad framing)."""


class Transport(Protocol):
    """Sends one HTTP request; returns status and body bytes."""

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """Send a request to a path (relative to the server) or a full URL."""
        ...

    async def aclose(self) -> None:
        """Close all connections."""
        ...


class HttpxTransport:
    """httpx.AsyncClient: complete, but costs ~1.5-2 ms of driver CPU per call."""

    def __init__(self, base_url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(
            base_url=base_url,
            limits=limits,
            timeout=HTTP_TIMEOUT_S,
            headers={"Client-Agent": CLIENT_AGENT},
            trust_env=False,
        )

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """Send through httpx."""
        try:
            resp = await self.client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from exc
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        """Close the httpx client."""
        await self.client.aclose()


@dataclass(eq=False)
class RawConn:
    """One keep-alive HTTP/1.1 connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        """Close without waiting."""
        self.writer.close()


def request_head(method: str, path: str, netloc: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """Request line and headers of an HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc}", f"Client-Agent: {CLIENT_AGENT}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class ResponseHead:
    """Status and the framing headers of a response."""

    status: int
    length: int | None
    chunked: bool
    keep_alive: bool


def parse_response_head(raw: bytes) -> ResponseHead:
    """Parse the status line and headers (ValueError when malformed)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    length: int | None = None
    chunked = False
    keep_alive = version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key, value = name.strip().lower(), value.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding":
            chunked = "chunked" in value
        elif key == "connection":
            keep_alive = value != "close" if version == "HTTP/1.1" else value == "keep-alive"
    return ResponseHead(int(status_text), length, chunked, keep_alive)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """Read a chunked body, trailers included."""
    parts: list[bytes] = []
    for _ in range(MAX_LOOP_ITERATIONS):
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            for _ in range(100):
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    return b"".join(parts)
            raise ValueError("too many trailer lines")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    raise ValueError("too many chunks")


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[ResponseHead, bytes]:
    """Read one response; its head and body."""
    head = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return head, b""
    if head.chunked:
        return head, await read_chunked(reader)
    if head.length is not None:
        return head, await reader.readexactly(head.length)
    body = await reader.read()  # delimited by EOF
    return ResponseHead(head.status, len(body), False, False), body


class StaleConnection(Exception):
    """A reused keep-alive connection had been closed by the server."""


RAW_ERRORS = (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError)


class RawTransport:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    About 20x cheaper in driver CPU than httpx (~0.1 ms per call), so that on a
    small machine the driver does not eat the cores the server needs.  Plain
    http only, Content-Length or chunked responses."""

    def __init__(self, base_url: str, connections: int) -> None:
        parts = urlsplit(base_url)
        self.base = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.idle: dict[tuple[str, int], list[RawConn]] = {}
        self.live: set[RawConn] = set()
        self.slots = asyncio.Semaphore(connections)

    def resolve(self, url: str) -> tuple[tuple[str, int], str]:
        """(host, port) and request target of a path or absolute URL."""
        if url.startswith("/"):
            return self.base, url
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise TransportError("UnsupportedURL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return (parts.hostname, parts.port or 80), target

    async def connect(self, addr: tuple[str, int], fresh: bool) -> tuple[RawConn, bool]:
        """An idle connection to addr (reused=True) or, if none or ``fresh``, a new one."""
        pool = self.idle.setdefault(addr, [])
        while pool and not fresh:
            conn = pool.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn, True
            self.discard(conn)  # the server closed it while idle
        reader, writer = await asyncio.open_connection(*addr)
        conn = RawConn(reader, writer)
        self.live.add(conn)
        return conn, False

    def discard(self, conn: RawConn) -> None:
        """Forget and close a connection in an unknown state."""
        self.live.discard(conn)
        conn.close()

    async def exchange(self, addr: tuple[str, int], method: str, data: bytes, fresh: bool) -> tuple[int, bytes]:
        """Send on a pooled (or, if ``fresh``, a new) connection; status and body."""
        conn, reused = await self.connect(addr, fresh)
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                conn.writer.write(data)
                head, body = await read_response(conn.reader, method)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            self.discard(conn)
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if reused and not partial:
                raise StaleConnection from exc
            raise
        except BaseException:
            self.discard(conn)
            raise
        if head.keep_alive:
            self.idle[addr].append(conn)
        else:
            self.discard(conn)
        return head.status, body

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """Send; retry once on a fresh connection if a reused one was dead."""
        addr, target = self.resolve(url)
        data = request_head(method, target, f"{addr[0]}:{addr[1]}", headers, body) + (body or b"")
        async with self.slots:
            try:
                try:
                    return await self.exchange(addr, method, data, fresh=False)
                except StaleConnection:
                    return await self.exchange(addr, method, data, fresh=True)
            except RAW_ERRORS as exc:
                raise TransportError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in list(self.live):
            self.discard(conn)
        self.idle.clear()


def make_transport(kind: str, base_url: str, connections: int) -> Transport:
    """The HTTP client selected with --http."""
    if kind == "httpx":
        return HttpxTransport(base_url, connections)
    return RawTransport(base_url, connections)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, parsed JSON body (or None) and latency."""

    status: int
    data: Any
    ms: float

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def error_key(status: int, data: Any) -> str:
    """'<status> <rc>' for the error counters."""
    rc = data.get("rc") if isinstance(data, dict) else None
    return f"{status} {rc or '-'}"


def parse_json(raw: bytes) -> Any:
    """A body as JSON, or None."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass
class ErrorLog:
    """Prints the first ``limit`` failed calls in full, for bug reports."""

    limit: int = 0
    shown: int = 0

    def show(self, method: str, url: str, sent: bytes | None, status: int, raw: bytes) -> None:
        """Print one failed call (request and response) while under the limit."""
        if self.shown >= self.limit:
            return
        self.shown += 1
        body = (sent or b"")[:300].decode(errors="replace")
        print(f"!! {method} {url} {body} -> {status} {raw[:500].decode(errors='replace')}", file=sys.stderr)


@dataclass(frozen=True)
class Api:
    """A transport bound to a Stats object."""

    transport: Transport
    stats: Stats
    errlog: ErrorLog = field(default_factory=ErrorLog)

    def with_stats(self, stats: Stats) -> Api:
        """The same connections, recording into other stats."""
        return Api(self.transport, stats, self.errlog)

    async def call(
        self,
        name: str,
        method: str,
        url: str,
        *,
        apikey: str | None = None,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        record: bool = True,
    ) -> Reply | None:
        """One request; records latency (2xx, if ``record``) or an error.

        ``body`` is sent as JSON, ``content`` as raw bytes.  Returns None on
        a transport error, else the Reply (2xx or not)."""
        headers = {}
        if apikey is not None:
            headers["apikey"] = apikey
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        try:
            status, raw = await self.transport.request(method, url, headers, content)
        except TransportError as exc:
            self.stats.fail(name, f"exc {exc}")
            return None
        reply = Reply(status, parse_json(raw), ms_since(start))
        if not reply.ok:
            self.stats.fail(name, error_key(reply.status, reply.data))
            self.errlog.show(method, url, content if body is not None else None, status, raw)
        elif record:
            self.stats.add(name, reply.ms)
        return reply


def ms_since(start: float) -> float:
    """Milliseconds elapsed since a perf_counter() reading."""
    return (time.perf_counter() - start) * 1000.0


async def sleep_until_or(seconds: float, deadline: float) -> None:
    """Sleep ``seconds`` but never past ``deadline`` (monotonic)."""
    await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


# --------------------------------------------------------------------------
# users


async def register(api: Api, username: str) -> str | None:
    """Register a user and return its API key."""
    reply = await api.call("register", "POST", f"{API}/register", body={"username": username})
    if reply is None or not reply.ok or not isinstance(reply.data, dict):
        return None
    key = reply.data.get("apikey")
    return key if isinstance(key, str) else None


async def register_users(api: Api, prefix: str, count: int) -> list[str]:
    """Register ``count`` users concurrently; raise if any fails."""
    sem = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(i: int) -> str | None:
        async with sem:
            return await register(api, f"{prefix}-{i}")

    keys = await asyncio.gather(*(one(i) for i in range(count)))
    good = [k for k in keys if k is not None]
    if len(good) != count:
        raise RuntimeError(f"registered only {len(good)} of {count} users ({prefix})")
    return good


# --------------------------------------------------------------------------
# workers


@dataclass(frozen=True)
class WorkerSpec:
    """A simulated worker: name, owner's key and capabilities."""

    name: str
    apikey: str
    max_pixels: int = MAX_PIXELS

    def pop_body(self) -> dict[str, Any]:
        """The JSON body of this worker's pop."""
        return {
            "name": self.name,
            "models": [MODEL],
            "max_pixels": self.max_pixels,
            "amount": 1,
            "bridge_agent": BRIDGE_AGENT,
        }


@dataclass(frozen=True)
class Job:
    """One job handed out by a pop."""

    id: str
    upload_url: str | None
    seed: int


@dataclass(frozen=True)
class Artifact:
    """The result every simulated worker uploads."""

    webp: bytes
    b64: str


def make_artifact() -> Artifact:
    """A 64x64 WebP, built once."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 120, 200)).save(buf, format="WEBP", quality=50)
    data = buf.getvalue()
    return Artifact(data, base64.b64encode(data).decode("ascii"))


def seed_as_int(value: Any) -> int:
    """The payload seed as an int (the server sends a string or an int)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def parse_jobs(data: Any) -> list[Job]:
    """Jobs in a pop answer; empty when ``id`` is null."""
    if not isinstance(data, dict) or not data.get("id"):
        return []
    ids = data.get("ids") or [data["id"]]
    uploads = data.get("r2_uploads") or [data.get("r2_upload")]
    payload = data.get("payload")
    seed = seed_as_int(payload.get("seed") if isinstance(payload, dict) else None)
    jobs = []
    for k, job_id in enumerate(ids):
        url = uploads[k] if k < len(uploads) else None
        jobs.append(Job(str(job_id), url if isinstance(url, str) and url else None, seed))
    return jobs


async def pop_once(api: Api, spec: WorkerSpec) -> list[Job] | None:
    """One pop; None on error, else the jobs (possibly none)."""
    reply = await api.call(
        "pop",
        "POST",
        f"{API}/generate/pop",
        apikey=spec.apikey,
        body=spec.pop_body(),
        record=False,
    )
    if reply is None or not reply.ok:
        return None
    jobs = parse_jobs(reply.data)
    api.stats.add("pop(job)" if jobs else "pop(empty)", reply.ms)
    return jobs


async def upload(api: Api, job: Job, art: Artifact) -> bool:
    """PUT the result to the job's presigned URL (loopback only)."""
    if job.upload_url is None:
        return False
    if urlsplit(job.upload_url).scheme and not is_loopback(job.upload_url):
        api.stats.fail("upload", "non-loopback-url")
        return False
    reply = await api.call("upload", "PUT", job.upload_url, content=art.webp, content_type="image/webp")
    return reply is not None and reply.ok


async def complete_job(api: Api, spec: WorkerSpec, job: Job, art: Artifact) -> None:
    """Upload (falling back to inline base64) and submit one job."""
    generation = "R2" if await upload(api, job, art) else art.b64
    body = {"id": job.id, "generation": generation, "state": "ok", "seed": job.seed}
    reply = await api.call("submit", "POST", f"{API}/generate/submit", apikey=spec.apikey, body=body)
    if reply is not None and reply.ok:
        api.stats.job_done()


async def pop_and_complete(api: Api, spec: WorkerSpec, art: Artifact) -> int | None:
    """Pop once and finish what came back; number of jobs, None on error."""
    jobs = await pop_once(api, spec)
    if jobs is None:
        return None
    for job in jobs:
        await complete_job(api, spec, job, art)
    return len(jobs)


async def worker_loop(
    api: Api,
    spec: WorkerSpec,
    art: Artifact,
    idle_sleep: float,
    stop: asyncio.Event,
    deadline: float,
) -> None:
    """Phase-1 worker: pop, complete, or sleep when idle, until stopped."""
    for _ in range(MAX_LOOP_ITERATIONS):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        got = await pop_and_complete(api, spec, art)
        if got is None:
            await sleep_until_or(ERROR_BACKOFF_S, deadline)
        elif got == 0:
            await sleep_until_or(idle_sleep, deadline)


def worker_specs(prefix: str, count: int, owners: list[str]) -> list[WorkerSpec]:
    """``count`` workers, spread over owners (WORKERS_PER_OWNER each)."""
    return [WorkerSpec(f"{prefix}-{i}", owners[i // WORKERS_PER_OWNER]) for i in range(count)]


def owners_needed(workers: int) -> int:
    """Owner users needed for that many workers."""
    return math.ceil(workers / WORKERS_PER_OWNER)


# --------------------------------------------------------------------------
# clients


def request_body() -> dict[str, Any]:
    """The JSON body of every benchmark request."""
    return {
        "prompt": "bench",
        "params": {"width": 512, "height": 512, "steps": 20, "n": 1},
        "models": [MODEL],
        "r2": True,
    }


async def submit_request(api: Api, apikey: str) -> Reply | None:
    """POST /generate/async; the Reply (its data holds the id when ok)."""
    return await api.call("async", "POST", f"{API}/generate/async", apikey=apikey, body=request_body())


def request_id(reply: Reply | None) -> str | None:
    """The request id from an async answer, if it succeeded."""
    if reply is None or not reply.ok or not isinstance(reply.data, dict):
        return None
    rid = reply.data.get("id")
    return rid if isinstance(rid, str) else None


async def wait_done(api: Api, rid: str, interval: float, stop: asyncio.Event, deadline: float) -> bool:
    """Poll /generate/check until done; False on error, stop or timeout."""
    max_polls = int(max(0.0, deadline - time.monotonic()) / max(interval, 0.001)) + 2
    for _ in range(min(max_polls, MAX_LOOP_ITERATIONS)):
        await sleep_until_or(interval, deadline)
        if stop.is_set():
            return False
        reply = await api.call("check", "GET", f"{API}/generate/check/{rid}")
        if reply is None or not reply.ok:
            return False
        if isinstance(reply.data, dict) and reply.data.get("done"):
            if reply.data.get("faulted"):
                api.stats.fail("check", "done-but-faulted")
                return False
            return True
        if time.monotonic() >= deadline:
            break
    api.stats.fail("check", "timeout not-done")
    return False


async def client_lane(api: Api, apikey: str, cfg: Config, stop: asyncio.Event, deadline: float) -> None:
    """One in-flight request slot of a client: async -> check* -> status."""
    for _ in range(MAX_LOOP_ITERATIONS):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        start = time.perf_counter()
        rid = request_id(await submit_request(api, apikey))
        if rid is None:
            await sleep_until_or(ERROR_BACKOFF_S, deadline)
            continue
        req_deadline = min(deadline, time.monotonic() + cfg.request_timeout)
        if await wait_done(api, rid, cfg.check_interval, stop, req_deadline):
            api.stats.add("e2e", ms_since(start))
            api.stats.last_done = rid
            await fetch_status(api, rid)


async def fetch_status(api: Api, rid: str) -> None:
    """GET /generate/status of a done request; count it if it lacks its image."""
    reply = await api.call("status", "GET", f"{API}/generate/status/{rid}")
    if reply is None or not reply.ok:
        return
    gens = reply.data.get("generations") if isinstance(reply.data, dict) else None
    if not (isinstance(gens, list) and len(gens) == 1 and isinstance(gens[0], dict) and gens[0].get("img")):
        api.stats.fail("status", "200 without-1-generation-with-img")


async def image_roundtrip(api: Api, rid: str | None, art: Artifact) -> bool | None:
    """Does the status of a finished request link to the very WebP uploaded?"""
    if rid is None:
        return None
    reply = await api.call("status", "GET", f"{API}/generate/status/{rid}", record=False)
    if reply is None or not reply.ok or not isinstance(reply.data, dict):
        return False
    gens = reply.data.get("generations")
    first = gens[0] if isinstance(gens, list) and gens else None
    img = first.get("img") if isinstance(first, dict) else None
    if not isinstance(img, str):
        return False
    if not img.startswith(("/", "http")):  # inline base64 (r2 false)
        try:
            return base64.b64decode(img, validate=True) == art.webp
        except ValueError:
            return False
    if not (img.startswith("/") or is_loopback(img)):
        api.stats.fail("image", "non-loopback-url")
        return False
    try:
        status, raw = await api.transport.request("GET", img, {}, None)
    except TransportError as exc:
        api.stats.fail("image", f"exc {exc}")
        return False
    return status == 200 and raw == art.webp


# --------------------------------------------------------------------------
# task handling


async def stop_tasks(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Ask tasks to stop, cancel stragglers, report driver bugs."""
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for res in results:
        if isinstance(res, Exception):
            traceback.print_exception(res, file=sys.stderr)


def spawn(coros: list[Coroutine[Any, Any, None]]) -> list[asyncio.Task[None]]:
    """Start coroutines as tasks."""
    return [asyncio.create_task(c) for c in coros]


# --------------------------------------------------------------------------
# phase 1: cycle


async def run_cycle(api: Api, cfg: Config, probe: CpuProbe, art: Artifact, tag: str) -> dict[str, Any]:
    """Phase 1: workers and clients cycling; returns the summary."""
    owners = await register_users(api, f"bench-owner{tag}", owners_needed(cfg.workers))
    users = await register_users(api, f"bench-client{tag}", cfg.clients)
    specs = worker_specs(f"bench-worker{tag}", cfg.workers, owners)
    stop = asyncio.Event()
    deadline = time.monotonic() + cfg.warmup + cfg.duration + STOP_GRACE_S
    coros = [worker_loop(api, s, art, cfg.idle_sleep, stop, deadline) for s in specs] + [
        client_lane(api, users[lane // cfg.inflight], cfg, stop, deadline) for lane in range(cfg.clients * cfg.inflight)
    ]
    api.stats.recording = False
    tasks = spawn(coros)
    try:
        await asyncio.sleep(cfg.warmup)
        api.stats.start_window()
        before = probe.snapshot()
        await asyncio.sleep(cfg.duration)
        after = probe.snapshot()
        api.stats.recording = False
    finally:
        await stop_tasks(tasks, stop)
    summary = cycle_summary(api.stats, before, after)
    summary["image_roundtrip_ok"] = await image_roundtrip(api, api.stats.last_done, art)
    return summary


def cycle_summary(stats: Stats, before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Throughput, CPU, latency and errors of phase 1."""
    elapsed = after.wall - before.wall
    return {
        "measured_s": round(elapsed, 3),
        "completed": stats.completed,
        "jobs_per_s": round(stats.completed / elapsed, 2) if elapsed > 0 else None,
        "cpu_ms_per_job": cpu_per_job(before, after, stats.completed),
        "cores_busy": cores_used(before, after),
        "calls_per_job": calls_per_job(stats),
        "latency_ms": latency_summary(stats),
        "errors": dict(stats.errors),
    }


def calls_per_job(stats: Stats) -> dict[str, float]:
    """Successful calls per completed job, per endpoint (the load mix)."""
    if stats.completed == 0:
        return {}
    names = [n for n in endpoint_names(stats) if n != "e2e"]
    return {n: round(len(stats.samples[n]) / stats.completed, 2) for n in names}


def print_cycle(cfg: Config, stats: Stats, res: dict[str, Any]) -> None:
    """Human-readable phase-1 report."""
    cpu = res["cpu_ms_per_job"]
    print(
        f"\n== phase 1: cycle ({cfg.db}, {cfg.workers} workers, {cfg.clients} clients"
        f" x {cfg.inflight} in flight, {res['measured_s']:.1f} s measured) =="
    )
    print(f"  completed jobs: {res['completed']} ({res['jobs_per_s']} jobs/s)")
    print(f"  uploaded image served back unchanged: {res['image_roundtrip_ok']}")
    print(
        f"  CPU per job: server {fmt_ms(cpu['server'])}, db {fmt_ms(cpu['db'])}"
        f"{' (in server process)' if cfg.db == 'sqlite' else ''},"
        f" server+db {fmt_ms(cpu['total'])}; driver {fmt_ms(cpu['driver'])}"
    )
    cores = res["cores_busy"]
    print(
        f"  cores busy (of {os.cpu_count()}): server {fmt_num(cores['server'])},"
        f" db {fmt_num(cores['db'])}, driver {fmt_num(cores['driver'])}"
    )
    mix = ", ".join(f"{n} {v:.2f}" for n, v in res["calls_per_job"].items())
    print(f"  calls per job: {mix or 'n/a'}")
    print_latency_table(stats)
    print_errors(stats)


# --------------------------------------------------------------------------
# per-endpoint cost


COST_LANES = 4
Lane = Callable[[Api, int, float], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class CostCall:
    """One endpoint call repeated by the cost step."""

    name: str
    method: str
    url: str
    apikey: str | None = None
    body: Any = None


async def finished_request(api: Api, user: str, worker: WorkerSpec, art: Artifact) -> str | None:
    """Create one request and serve it, so check/status have a done request."""
    rid = request_id(await submit_request(api, user))
    for _ in range(20):
        if rid is None or await pop_and_complete(api, worker, art):
            break
    return rid


def repeat_call(call: CostCall) -> Lane:
    """A lane calling one endpoint back to back until the deadline."""

    async def lane(api: Api, _: int, deadline: float) -> None:
        for _ in range(MAX_LOOP_ITERATIONS):
            if time.monotonic() >= deadline:
                return
            reply = await api.call(call.name, call.method, call.url, apikey=call.apikey, body=call.body, record=False)
            if reply is not None and reply.ok:
                api.stats.add(call.name, reply.ms)
                api.stats.job_done()

    return lane


def bare_cycle(user: str, workers: list[WorkerSpec], art: Artifact) -> Lane:
    """A lane doing async -> pop -> upload -> submit, with no polling."""

    async def lane(api: Api, index: int, deadline: float) -> None:
        for _ in range(MAX_LOOP_ITERATIONS):
            if time.monotonic() >= deadline:
                return
            if request_id(await submit_request(api, user)) is None:
                await sleep_until_or(ERROR_BACKOFF_S, deadline)
                continue
            await pop_and_complete(api, workers[index], art)

    return lane


async def cost_of(api: Api, name: str, lane: Lane, probe: CpuProbe, seconds: float) -> dict[str, Any]:
    """CPU per call (per job for a cycle) and latency, COST_LANES lanes busy."""
    stats = Stats()
    sub = api.with_stats(stats)
    before = probe.snapshot()
    deadline = before.wall + seconds
    await asyncio.gather(*(lane(sub, i, deadline) for i in range(COST_LANES)))
    after = probe.snapshot()
    elapsed = after.wall - before.wall
    out: dict[str, Any] = {"calls": stats.completed, "per_s": round(stats.completed / elapsed, 1)}
    out["cpu_ms_per_call"] = cpu_per_job(before, after, stats.completed)
    out["latency_ms"] = latency_summary(stats).get("pop(job)" if name == "cycle(bare)" else name)
    out["errors"] = dict(stats.errors)
    return out


async def run_costs(api: Api, cfg: Config, probe: CpuProbe, art: Artifact, tag: str) -> dict[str, Any]:
    """CPU per call of single endpoints (heartbeat is the framework's floor), and
    per job of a bare cycle (async, pop, upload, submit; no check/status polling)."""
    user, *owners = await register_users(api, f"bench-cost{tag}", 1 + owners_needed(COST_LANES + 1))
    workers = worker_specs(f"bench-cost-worker{tag}", COST_LANES, owners)
    rid = await finished_request(api, user, workers[0], art)
    nomatch = WorkerSpec(f"bench-cost-nomatch{tag}", owners[-1], NOMATCH_MAX_PIXELS)
    calls = [CostCall("heartbeat", "GET", f"{API}/status/heartbeat")]
    if rid is not None:
        calls.append(CostCall("check", "GET", f"{API}/generate/check/{rid}"))
        calls.append(CostCall("status", "GET", f"{API}/generate/status/{rid}"))
    calls.append(CostCall("pop(empty)", "POST", f"{API}/generate/pop", owners[-1], nomatch.pop_body()))
    lanes = {c.name: repeat_call(c) for c in calls}
    lanes["cycle(bare)"] = bare_cycle(user, workers, art)
    return {name: await cost_of(api, name, lane, probe, cfg.cost_seconds) for name, lane in lanes.items()}


def print_costs(cfg: Config, res: dict[str, Any]) -> None:
    """Human-readable per-endpoint cost table."""
    print(f"\n== endpoint cost ({cfg.db}, {COST_LANES} lanes back to back, {cfg.cost_seconds:.0f} s each) ==")
    print(f"  {'endpoint':<12}{'calls/s':>9}{'server':>9}{'db':>9}{'p50':>9}{'p99':>9}   (CPU ms/call; ms)")
    for name, row in res.items():
        cpu = row["cpu_ms_per_call"]
        lat = row["latency_ms"] or {"p50": math.nan, "p99": math.nan}
        print(
            f"  {name:<12}{row['per_s']:>9.1f}{fmt_num(cpu['server']):>9}{fmt_num(cpu['db']):>9}"
            f"{lat['p50']:>9.1f}{lat['p99']:>9.1f}"
        )
        for key, count in sorted(row["errors"].items()):
            print(f"    error {key}: {count}")
    print("  cycle(bare) = async+pop+upload+submit without polling: jobs/s, CPU ms per job, pop latency")


# --------------------------------------------------------------------------
# phase 2: deep queue


async def enqueue(api: Api, keys: list[str], total: int, concurrency: int, deadline: float) -> list[str]:
    """Create ``total`` requests (PER_USER_REQUESTS per key); their ids."""
    ids: list[str] = []
    indexes = iter(range(total))

    async def feeder() -> None:
        for k in indexes:
            if time.monotonic() >= deadline:
                return
            rid = request_id(await submit_request(api, keys[k // PER_USER_REQUESTS]))
            if rid is not None:
                ids.append(rid)

    await asyncio.gather(*(feeder() for _ in range(concurrency)))
    return ids


async def queue_depth(api: Api) -> int | None:
    """``queued_requests`` from /status/performance, if the server has it."""
    reply = await api.call("performance", "GET", f"{API}/status/performance")
    if reply is None or not reply.ok or not isinstance(reply.data, dict):
        return None
    depth = reply.data.get("queued_requests")
    return depth if isinstance(depth, int) else None


async def pop_many(api: Api, specs: list[WorkerSpec], art: Artifact, pops: int, deadline: float) -> None:
    """``pops`` pops in total, shared by the given workers running concurrently."""
    budget = iter(range(pops))

    async def run(spec: WorkerSpec) -> None:
        for _ in budget:
            if time.monotonic() >= deadline:
                return
            if await pop_and_complete(api, spec, art) is None:
                await sleep_until_or(ERROR_BACKOFF_S, deadline)

    await asyncio.gather(*(run(s) for s in specs))


@dataclass
class DeepResult:
    """Stats of each deep-queue step, for printing and the summary."""

    enqueue: Stats = field(default_factory=Stats)
    nomatch: Stats = field(default_factory=Stats)
    sequential: Stats = field(default_factory=Stats)
    concurrent: Stats = field(default_factory=Stats)
    enqueued: int = 0
    enqueue_s: float = 0.0
    depth_before: int | None = None
    depth_after: int | None = None

    def steps(self) -> dict[str, Stats]:
        """Named steps in execution order."""
        return {
            "enqueue": self.enqueue,
            "nomatch": self.nomatch,
            "sequential": self.sequential,
            "concurrent": self.concurrent,
        }


async def deep_enqueue(api: Api, cfg: Config, res: DeepResult, tag: str) -> list[str]:
    """Register enough users and fill the queue; returns request ids."""
    users = math.ceil(cfg.queued / PER_USER_REQUESTS)
    keys = await register_users(api, f"bench-deep{tag}", users)
    start = time.monotonic()
    ids = await enqueue(
        api.with_stats(res.enqueue),
        keys,
        cfg.queued,
        cfg.enqueue_concurrency,
        start + cfg.phase_timeout,
    )
    res.enqueue_s = time.monotonic() - start
    res.enqueued = len(ids)
    return ids


async def deep_pops(api: Api, cfg: Config, res: DeepResult, art: Artifact, tag: str) -> None:
    """No-match, sequential and concurrent pops against the full queue."""
    owners = await register_users(api, f"bench-deep-owner{tag}", owners_needed(cfg.deep_workers + 2))
    nomatch = WorkerSpec(f"bench-nomatch{tag}", owners[0], NOMATCH_MAX_PIXELS)
    seq = WorkerSpec(f"bench-deep-seq{tag}", owners[0])
    conc = worker_specs(f"bench-deep-worker{tag}", cfg.deep_workers + 2, owners)[2:]
    steps: list[tuple[Stats, list[WorkerSpec], int]] = [
        (res.nomatch, [nomatch], cfg.deep_nomatch),
        (res.sequential, [seq], cfg.deep_pops),
        (res.concurrent, conc, cfg.deep_pops),
    ]
    for stats, specs, pops in steps:
        deadline = time.monotonic() + cfg.phase_timeout
        await pop_many(api.with_stats(stats), specs, art, pops, deadline)


async def cancel_requests(api: Api, ids: list[str], concurrency: int) -> None:
    """DELETE leftover requests (used with --url so the queue is not left full)."""
    todo = iter(ids)

    async def canceller() -> None:
        for rid in todo:
            await api.call("cancel", "DELETE", f"{API}/generate/status/{rid}")

    await asyncio.gather(*(canceller() for _ in range(concurrency)))


async def run_deep(api: Api, cfg: Config, art: Artifact, tag: str) -> tuple[DeepResult, dict[str, Any]]:
    """Phase 2: fill the queue, then measure pops against it."""
    res = DeepResult()
    ids = await deep_enqueue(api, cfg, res, tag)
    res.depth_before = await queue_depth(api)
    await deep_pops(api, cfg, res, art, tag)
    res.depth_after = await queue_depth(api)
    if cfg.url is not None:
        await cancel_requests(api, ids, cfg.enqueue_concurrency)
    return res, deep_summary(res)


def deep_summary(res: DeepResult) -> dict[str, Any]:
    """JSON-able summary of phase 2."""
    out: dict[str, Any] = {
        "enqueued": res.enqueued,
        "enqueue_s": round(res.enqueue_s, 3),
        "enqueue_per_s": round(res.enqueued / res.enqueue_s, 1) if res.enqueue_s > 0 else None,
        "queue_depth_before_pops": res.depth_before,
        "queue_depth_after_pops": res.depth_after,
    }
    for name, stats in res.steps().items():
        out[name] = {
            "latency_ms": latency_summary(stats),
            "completed": stats.completed,
            "errors": dict(stats.errors),
        }
    return out


def deep_pop_p99(res: DeepResult) -> float | None:
    """Worst pop p99 over the three pop steps (the target's figure)."""
    worst: float | None = None
    for stats in (res.nomatch, res.sequential, res.concurrent):
        for name in ("pop(job)", "pop(empty)"):
            if stats.samples.get(name):
                p99 = summarize_samples(stats.samples[name])["p99"]
                worst = p99 if worst is None else max(worst, p99)
    return worst


def print_deep(cfg: Config, res: DeepResult) -> None:
    """Human-readable phase-2 report."""
    rate = res.enqueued / res.enqueue_s if res.enqueue_s > 0 else 0.0
    print(f"\n== phase 2: deep queue ({cfg.db}, {cfg.queued} requested) ==")
    print(
        f"  enqueued {res.enqueued} requests in {res.enqueue_s:.1f} s"
        f" ({rate:.0f}/s, {cfg.enqueue_concurrency} concurrent)"
    )
    print(f"  queue depth (status/performance): before pops {res.depth_before}, after pops {res.depth_after}")
    titles = {
        "enqueue": "enqueue (async at growing depth)",
        "nomatch": f"no-match pops (max_pixels {NOMATCH_MAX_PIXELS}, sequential)",
        "sequential": "matching pops, 1 worker, sequential (with upload+submit)",
        "concurrent": f"matching pops, {cfg.deep_workers} workers concurrently",
    }
    for name, stats in res.steps().items():
        print(f" -- {titles[name]}")
        print_latency_table(stats)
        print_errors(stats)


# --------------------------------------------------------------------------
# server and database lifecycle


@dataclass(frozen=True)
class Server:
    """Where the server listens and which pid to account CPU to."""

    url: str
    pid: int | None


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def openhorde_executable() -> Path:
    """The ``openhorde`` console script next to the running interpreter."""
    exe = Path(sys.executable).parent / "openhorde"
    if not exe.exists():
        raise SystemExit(f"{exe} not found; install the project into this venv")
    return exe


def server_env(database_url: str | None) -> dict[str, str]:
    """Environment for the server subprocess."""
    env = dict(os.environ)
    env.pop("OPENHORDE_DATABASE_URL", None)
    if database_url is not None:
        env["OPENHORDE_DATABASE_URL"] = database_url
    env["OPENHORDE_RATE_LIMITS"] = "off"
    env["OPENHORDE_LOG_LEVEL"] = "warning"
    return env


def asyncpg_module() -> Any:
    """asyncpg, imported lazily (only --db postgres needs it)."""
    return importlib.import_module("asyncpg")


async def pg_admin(statement: str) -> None:
    """Run one statement on the postgres maintenance database."""
    conn = await asyncpg_module().connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def bench_database(kind: str) -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database for this run (dropped after), or None."""
    if kind != "postgres":
        yield None
        return
    name = f"bench_{secrets.token_hex(6)}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER_URL.format(db=name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def wait_ready(url: str, wait_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    """Wait until GET /status/heartbeat answers 200."""
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient(base_url=url, timeout=2.0, trust_env=False) as client:
        for _ in range(MAX_LOOP_ITERATIONS):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited early with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                resp = await client.get(f"{API}/status/heartbeat")
                if resp.status_code == 200:
                    return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server at {url} not ready after {wait_s:.0f} s")


def start_server(
    port: int,
    data_dir: Path,
    database_url: str | None,
    log_path: Path,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Launch ``openhorde serve`` (with ``extra_args``) in its own process group."""
    cmd = [
        str(openhorde_executable()),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd,
            env={**server_env(database_url), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it after 15 s."""
    if proc.poll() is not None:
        print(f"!! server had exited with code {proc.returncode}", file=sys.stderr)
        return
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
            return


def report_log(log_path: Path, copy_to: Path | None) -> None:
    """Copy the server log if asked; show its tail if it has tracebacks."""
    if not log_path.exists():
        return
    if copy_to is not None:
        shutil.copyfile(log_path, copy_to)
    lines = log_path.read_text(errors="replace").splitlines()
    bad = sum(1 for ln in lines if "Traceback" in ln or " ERROR" in ln)
    if bad:
        print(f"\n!! server log has {bad} error line(s); last 40 lines:", file=sys.stderr)
        for line in lines[-40:]:
            print(f"   | {line}", file=sys.stderr)


@contextlib.asynccontextmanager
async def own_server(cfg: Config) -> AsyncIterator[Server]:
    """Start a private server (and database), stop and clean up after."""
    data_dir = Path(tempfile.mkdtemp(prefix="openhorde-bench-"))
    log_path = data_dir / "server.log"
    try:
        async with bench_database(cfg.db) as db_url:
            port = free_port()
            proc = start_server(port, data_dir / "data", db_url, log_path)
            try:
                url = f"http://127.0.0.1:{port}"
                await wait_ready(url, cfg.startup_timeout, proc)
                yield Server(url, proc.pid)
            finally:
                stop_server(proc)
    finally:
        report_log(log_path, cfg.server_log)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def server_for(cfg: Config) -> AsyncIterator[Server]:
    """The server to measure: ``--url`` or a private one."""
    if cfg.url is None:
        async with own_server(cfg) as server:
            yield server
        return
    await wait_ready(cfg.url, cfg.startup_timeout, None)
    yield Server(cfg.url, cfg.server_pid)


# --------------------------------------------------------------------------
# main


def targets(cfg: Config, cycle: dict[str, Any] | None, deep: DeepResult | None) -> dict[str, bool | None]:
    """Pass/fail of the README targets (defined for PostgreSQL)."""
    out: dict[str, bool | None] = {}
    if cycle is not None:
        total = cycle["cpu_ms_per_job"]["total"]
        out["cpu_le_10ms_per_job"] = None if total is None else total <= 10.0
        rate = cycle["jobs_per_s"]
        out["ge_100_jobs_per_s"] = None if rate is None else rate >= 100.0
    if deep is not None:
        p99 = deep_pop_p99(deep)
        out["deep_pop_p99_lt_30ms"] = None if p99 is None else p99 < 30.0
    return out


def print_targets(cfg: Config, result: dict[str, bool | None]) -> None:
    """One line per target."""
    if not result:
        return
    note = "" if cfg.db == "postgres" else " (targets are defined for PostgreSQL)"
    print(f"\n== targets{note} ==")
    for name, ok in result.items():
        print(f"  {name}: {'n/a' if ok is None else ('PASS' if ok else 'FAIL')}")


async def measure(cfg: Config, server: Server) -> dict[str, Any]:
    """Run the selected phases against a ready server."""
    tag = f"-{secrets.token_hex(3)}" if cfg.url else ""
    art = make_artifact()
    probe = CpuProbe(server.pid, cfg.db == "postgres")
    lanes = cfg.clients * cfg.inflight
    pool = cfg.workers + lanes + cfg.enqueue_concurrency + cfg.deep_workers + 8
    summary: dict[str, Any] = {"db": cfg.db, "workers": cfg.workers}
    summary.update(clients=cfg.clients, inflight=cfg.inflight, url=server.url, http=cfg.http)
    cycle: dict[str, Any] | None = None
    deep: DeepResult | None = None
    transport = make_transport(cfg.http, server.url, pool)
    errlog = ErrorLog(cfg.show_errors)
    try:
        if not cfg.skip_cycle:
            stats = Stats()
            cycle = await run_cycle(Api(transport, stats, errlog), cfg, probe, art, tag)
            print_cycle(cfg, stats, cycle)
            summary["cycle"] = cycle
        if not cfg.skip_costs:
            summary["costs"] = await run_costs(Api(transport, Stats(), errlog), cfg, probe, art, tag)
            print_costs(cfg, summary["costs"])
        if not cfg.skip_deep:
            deep, summary["deep"] = await run_deep(Api(transport, Stats(), errlog), cfg, art, tag)
            print_deep(cfg, deep)
    finally:
        await transport.aclose()
    summary["targets"] = targets(cfg, cycle, deep)
    print_targets(cfg, summary["targets"])
    return summary


async def amain(cfg: Config) -> int:
    """Set up the server, measure, print the RESULT line."""
    async with server_for(cfg) as server:
        print(f"server {server.url} (pid {server.pid}), db {cfg.db}", flush=True)
        summary = await measure(cfg, server)
    print("RESULT " + json.dumps(summary, sort_keys=True), flush=True)
    return 0


def run_loop(cfg: Config) -> int:
    """Run amain on uvloop when available (less driver CPU), else asyncio."""
    uvloop: Any = None
    if cfg.uvloop:
        with contextlib.suppress(ImportError):
            uvloop = importlib.import_module("uvloop")
    if uvloop is None:
        return asyncio.run(amain(cfg))
    code: int = uvloop.run(amain(cfg))
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run_loop(parse_config(argv))


if __name__ == "__main__":
    sys.exit(main())
