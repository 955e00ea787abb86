"""``server_cycle.py``'s command line, and the load shapes phase 1 can drive."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path

from harness.client import is_loopback
from harness.horde import PER_USER_REQUESTS, RequestShape
from harness.launcher import DB_KINDS, DbKind


@dataclass(frozen=True)
class Load:
    """The shape of phase 1's traffic (and of the endpoint-cost step's requests)."""

    name: str
    clients: int  # users, each keeping ``inflight`` requests going
    inflight: int  # requests a client keeps outstanding (queued or generating, not yet seen done)
    check_interval: float  # seconds between two checks of one request
    idle_sleep: float  # seconds a worker sleeps after a pop that returned nothing
    side: int  # requests are side × side
    summary: str

    @property
    def request(self) -> RequestShape:
        """What each request asks for."""
        return RequestShape(width=self.side, height=self.side)

    @property
    def lanes(self) -> int:
        """Requests outstanding at any time."""
        return self.clients * self.inflight

    @property
    def ceiling(self) -> float:
        """Jobs/s the clients can ask for at most: a request lives at least one check interval."""
        return math.inf if self.check_interval <= 0 else self.lanes / self.check_interval


LOADS = {
    # The driver's original mix, harsher than real traffic: fast polling and busy idle workers make the
    # server's per-call costs dominate, which is what it was written to expose.
    "stress": Load(
        name="stress",
        clients=8,
        inflight=4,
        check_interval=0.1,
        idle_sleep=0.05,
        side=512,
        summary="8 clients x 4 in flight, check every 0.1 s, 512x512, idle pop 0.05 s",
    ),
    # Issue 13's load: an independent load driver with 4 clients keeping 24 requests queued, checking each
    # once a second; 64x64 jobs; workers poll like real ones (an empty pop waits ~1 s, a job is submitted
    # at once). 24 per client stays below the server's 30 queued images per user.
    "steady": Load(
        name="steady",
        clients=4,
        inflight=24,
        check_interval=1.0,
        idle_sleep=1.0,
        side=64,
        summary="4 clients x 24 queued, check every 1 s, 64x64, idle pop 1 s",
    ),
}
DEFAULT_LOAD = "stress"


@dataclass(frozen=True)
class Config:
    """Command-line settings."""

    dbs: tuple[DbKind, ...]
    workers: int
    compare_workers: tuple[int, ...]
    load: Load
    processes: int
    duration: float
    warmup: float
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
    skip_costs: bool
    cost_seconds: float
    url: str | None
    server_pid: int | None
    server_log: Path | None
    uvloop: bool
    show_errors: int


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


def worker_counts(text: str) -> tuple[int, ...]:
    """argparse type: at least two comma-separated worker counts, e.g. ``8,32``."""
    counts = tuple(positive_int(part) for part in text.split(","))
    if len(counts) < 2:
        raise argparse.ArgumentTypeError("give at least two counts, e.g. 8,32")
    return counts


def add_load_flags(p: argparse.ArgumentParser) -> None:
    """``--load`` and the flags that override one of its values."""
    g = p.add_argument_group("load shape (phase 1); each flag overrides the --load value")
    shapes = "; ".join(f"{load.name}: {load.summary}" for load in LOADS.values())
    g.add_argument("--load", choices=sorted(LOADS), default=DEFAULT_LOAD, help=shapes)
    g.add_argument("--clients", type=positive_int)
    g.add_argument("--inflight", type=positive_int, help=f"requests each client keeps going (<= {PER_USER_REQUESTS})")
    g.add_argument("--check-interval", type=non_negative_float, help="seconds between checks of one request")
    g.add_argument("--idle-sleep", type=non_negative_float, help="seconds a worker waits after an empty pop")
    g.add_argument("--size", type=positive_int, help="requests are SIZE x SIZE pixels (a multiple of 64)")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Which databases, servers and worker counts to run."""
    p.add_argument("--db", choices=(*DB_KINDS, "both"), default="sqlite", help="'both': SQLite, then PostgreSQL")
    p.add_argument("--workers", type=positive_int, default=8, help="simulated workers in phase 1")
    p.add_argument(
        "--compare-workers",
        type=worker_counts,
        metavar="A,B",
        help="phase 1 only, with A then B workers, each on a fresh server; prints B's jobs/s as a share of A's",
    )
    p.add_argument("--processes", type=positive_int, default=1, help="server processes (serve --workers N)")
    p.add_argument("--duration", type=non_negative_float, default=20.0, help="measured seconds of phase 1")
    p.add_argument("--warmup", type=non_negative_float, default=3.0)
    p.add_argument(
        "--request-timeout",
        type=non_negative_float,
        default=120.0,
        help="client gives up polling a request after this many seconds",
    )
    p.add_argument("--startup-timeout", type=non_negative_float, default=60.0)
    p.add_argument("--skip-cycle", action="store_true")
    p.add_argument("--skip-costs", action="store_true", help="skip the per-endpoint cost step")
    p.add_argument("--skip-deep", action="store_true")
    p.add_argument("--cost-seconds", type=non_negative_float, default=3.0, help="seconds per endpoint-cost lane")


def add_deep_flags(p: argparse.ArgumentParser) -> None:
    """Phase 2's sizes."""
    g = p.add_argument_group("deep queue (phase 2)")
    g.add_argument("--queued", type=positive_int, default=10_000)
    g.add_argument("--deep-pops", type=positive_int, default=500)
    g.add_argument("--deep-nomatch", type=positive_int, default=200)
    g.add_argument("--deep-workers", type=positive_int, default=8)
    g.add_argument("--enqueue-concurrency", type=positive_int, default=32)
    g.add_argument(
        "--phase-timeout",
        type=non_negative_float,
        default=600.0,
        help="upper bound on each deep-queue step (enqueue, pops)",
    )


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """An external server, logs, the driver's own event loop."""
    p.add_argument("--url", help="use this already-running loopback server (one run: no --db both, no compare)")
    p.add_argument("--server-pid", type=int, help="server pid for CPU figures with --url")
    p.add_argument("--server-log", type=Path, help="copy the server log here (the last run's, with several)")
    p.add_argument(
        "--show-errors",
        type=int,
        default=5,
        metavar="N",
        help="print the first N failed calls in full (request body and response)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        description="Measure an OpenHorde server over loopback HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_run_flags(p)
    add_load_flags(p)
    add_deep_flags(p)
    add_server_flags(p)
    return p


def resolve_load(ns: argparse.Namespace) -> Load:
    """The chosen load shape with the individual flags applied."""
    load = LOADS[ns.load]
    overrides = {
        "clients": ns.clients,
        "inflight": ns.inflight,
        "check_interval": ns.check_interval,
        "idle_sleep": ns.idle_sleep,
        "side": ns.size,
    }
    changed = {k: v for k, v in overrides.items() if v is not None}
    if not changed:
        return load
    return replace(load, name=f"{load.name}*", **changed)  # '*': not the documented shape any more


def check_args(parser: argparse.ArgumentParser, ns: argparse.Namespace, load: Load) -> None:
    """Refuse combinations that cannot work (rather than failing minutes into a run)."""
    if load.inflight > PER_USER_REQUESTS:
        parser.error(f"--inflight must be <= {PER_USER_REQUESTS} (the server queues 30 images per user)")
    if load.side % 64:
        parser.error("--size must be a multiple of 64")
    if ns.url is not None:
        if not is_loopback(ns.url):
            parser.error("--url must point at a loopback address")
        if ns.db == "both" or ns.compare_workers:
            parser.error("--url measures one server: no --db both, no --compare-workers")


def parse_config(argv: list[str] | None = None) -> Config:
    """Parse and sanity-check the command line."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    load = resolve_load(ns)
    check_args(parser, ns, load)
    return Config(
        dbs=DB_KINDS if ns.db == "both" else (ns.db,),
        workers=ns.workers,
        compare_workers=ns.compare_workers or (),
        load=load,
        processes=ns.processes,
        duration=ns.duration,
        warmup=ns.warmup,
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
        skip_costs=ns.skip_costs,
        cost_seconds=ns.cost_seconds,
        url=ns.url.rstrip("/") if ns.url else None,
        server_pid=ns.server_pid,
        server_log=ns.server_log,
        uvloop=not ns.no_uvloop,
        show_errors=ns.show_errors,
    )
