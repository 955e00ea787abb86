"""One run of ``server_cycle.py`` (a server, then the phases), and the series ``--db both`` and
``--compare-workers`` make of runs, each on a fresh server and database."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from harness.client import Api, ErrorLog, HttpClient
from harness.cpu import CpuProbe
from harness.horde import make_artifact
from harness.launcher import DbKind, Server, ServerOptions, attach, launch
from harness.stats import Stats
from scenarios.config import Config
from scenarios.costs import COST_LANES, print_costs, run_costs
from scenarios.cycle import print_cycle, run_cycle
from scenarios.deep import deep_summary, print_deep, run_deep
from scenarios.targets import compare_workers, print_comparison, print_targets, run_targets

SPARE_CONNECTIONS = 8


@dataclass(frozen=True)
class Phases:
    """Which phases a run does."""

    cycle: bool
    costs: bool
    deep: bool


def chosen_phases(cfg: Config) -> Phases:
    """The phases the command line asked for; a worker comparison only needs phase 1."""
    if cfg.compare_workers:
        return Phases(cycle=True, costs=False, deep=False)
    return Phases(not cfg.skip_cycle, not cfg.skip_costs, not cfg.skip_deep)


def run_title(cfg: Config, db: DbKind, workers: int, phases: Phases) -> str:
    """What a run measures, in a few words, for every table's heading (workers and load only where used)."""
    servers = f"{cfg.processes} server process(es)"
    if not (phases.cycle or phases.costs):
        return f"{db}, {servers}"
    return f"{db}, {workers} workers, {cfg.load.name} load, {servers}"


def load_line(cfg: Config) -> str:
    """The load shape in full, printed once per run."""
    load = cfg.load
    return (
        f"load {load.name}: {load.clients} clients x {load.inflight} in flight, check every"
        f" {load.check_interval:g} s, {load.side}x{load.side} requests, idle pop {load.idle_sleep:g} s"
    )


def pool_size(cfg: Config, workers: int) -> int:
    """Connections for every actor that may be in a call at once, so none queues inside the driver."""
    return workers + cfg.load.lanes + cfg.enqueue_concurrency + cfg.deep_workers + COST_LANES + SPARE_CONNECTIONS


@contextlib.asynccontextmanager
async def server_for(cfg: Config, db: DbKind) -> AsyncIterator[Server]:
    """The server to measure: ``--url`` or a fresh private one."""
    if cfg.url is not None:
        async with attach(cfg.url, cfg.server_pid, db, cfg.startup_timeout) as server:
            yield server
        return
    options = ServerOptions(processes=cfg.processes, startup_timeout=cfg.startup_timeout, log_copy=cfg.server_log)
    async with launch(db, options) as server:
        yield server


async def measure(cfg: Config, server: Server, workers: int, phases: Phases) -> dict[str, Any]:
    """Run the chosen phases against a ready server; the run's summary."""
    tag = f"-{secrets.token_hex(3)}" if cfg.url else ""  # usernames must not clash with an earlier run's
    art = make_artifact()
    probe = CpuProbe(server.pid, server.db == "postgres")
    title = run_title(cfg, server.db, workers, phases)
    summary: dict[str, Any] = {
        "db": server.db,
        "workers": workers,
        "clients": cfg.load.clients,
        "inflight": cfg.load.inflight,
        "load": asdict(cfg.load),
        "processes": server.processes,
        "url": server.url,
    }
    http = HttpClient(server.url, pool_size(cfg, workers))
    api = Api(http, Stats(), ErrorLog(cfg.show_errors))
    cycle: dict[str, Any] | None = None
    deep_p99: float | None = None
    try:
        if phases.cycle:
            stats = Stats()
            cycle = summary["cycle"] = await run_cycle(api.with_stats(stats), cfg, probe, art, workers, tag)
            print_cycle(title, stats, cycle, server.db)
        if phases.costs:
            costs = await run_costs(api.with_stats(Stats()), probe, art, cfg.load.request, cfg.cost_seconds, tag)
            summary["costs"] = costs
            print_costs(title, costs, cfg.cost_seconds)
        if phases.deep:
            deep = await run_deep(api.with_stats(Stats()), cfg, art, tag)
            summary["deep"] = deep_summary(deep)
            deep_p99 = deep.pop_p99()
            print_deep(title, cfg, deep)
    finally:
        await http.aclose()
    summary["targets"] = run_targets(server.db, cycle, summary.get("costs"), deep_p99, phases.deep)
    print_targets(summary["targets"])
    return summary


async def run_one(cfg: Config, db: DbKind, workers: int, phases: Phases) -> dict[str, Any]:
    """One server (fresh unless ``--url``), the phases, the server gone again."""
    async with server_for(cfg, db) as server:
        print(f"\nserver {server.url} (pid {server.pid}): {run_title(cfg, db, workers, phases)}", flush=True)
        if phases.cycle or phases.costs:
            print(load_line(cfg), flush=True)
        return await measure(cfg, server, workers, phases)


async def run_comparisons(cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Phase 1 with each worker count on a fresh server, per database; the runs and the comparisons."""
    runs: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    for db in cfg.dbs:
        series = [await run_one(cfg, db, workers, chosen_phases(cfg)) for workers in cfg.compare_workers]
        comparison = compare_workers(db, series)
        title = f"{db}, load {cfg.load.name}, {cfg.processes} server process(es), {cfg.duration:g} s each"
        print_comparison(title, series, comparison)
        runs += series
        comparisons.append(comparison)
    return runs, comparisons


async def run_all(cfg: Config) -> dict[str, Any]:
    """Every run the command line asks for; the RESULT object.

    A single run's RESULT is that run's summary (the shape scripts already read); a series is
    ``{"load", "runs": [...], "comparisons": [...]}``."""
    if cfg.compare_workers:
        runs, comparisons = await run_comparisons(cfg)
    else:
        runs = [await run_one(cfg, db, cfg.workers, chosen_phases(cfg)) for db in cfg.dbs]
        comparisons = []
    if len(runs) == 1:
        return runs[0]
    return {"load": asdict(cfg.load), "runs": runs, "comparisons": comparisons}
