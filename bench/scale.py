"""Scale benchmark: pop latency and completed jobs/s with a deep queue, 1 vs 2 server processes.

What it does
------------
1. Creates a scratch PostgreSQL database ``scale_<random>`` (dropped at the end) and starts
   ``openhorde serve --workers 1`` on it (``OPENHORDE_RATE_LIMITS=off``, ``OPENHORDE_ALLOW_CUSTOM_MODELS=true``)
   through the shared launcher (``harness/launcher.py``).
2. Queues ``--queued`` one-image requests over ``--models`` models: one request per model goes through
   ``POST /generate/async`` (so the row shape, price and queue rank are the domain's), then PostgreSQL copies
   each template ``queued / models`` times in one ``INSERT … SELECT generate_series`` (new ids, created_at
   spaced by 1 ms, ``queue_rank`` shifted by ``-5 × Δcreated_at`` exactly as the ranking formula does), plus
   their ``request_models`` rows, then ``ANALYZE``.
3. Registers ``--workers`` workers (``--owners`` accounts), each serving 3 of the models, with one pop each
   that matches nothing (``max_pixels`` 64×64). Then, with no other traffic, 200 pops one at a time by a worker
   that gets a job each time and 200 by a worker whose only model nobody asked for: the pop's own latency at
   this depth, with and without a match; and 10 ``/generate/check`` calls that each read a new queue snapshot.
4. For ``--processes`` 1 and then 2 (``openhorde serve --workers N`` on the same database and data dir):
   ``--lanes`` concurrent lanes each take a random worker and loop pop → PUT a 64×64 WebP → submit, for
   ``--seconds`` after ``--warmup``. Printed: pop latency p50/p95/p99/max (pops that returned a job), completed
   jobs/s, queue depth at the start, and cores busy and CPU ms per job of the server tree, PostgreSQL and this
   driver (``harness/cpu.py``) -- the figures that say which one is the bottleneck.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, user postgres, trust)::

    .venv/bin/python bench/scale.py            # 100,000 queued, 1,000 workers, 20 models, 20 s per run
    .venv/bin/python bench/scale.py --quick    # 10,000 queued, 200 workers, 8 s per run

The last line is ``RESULT {json}``. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from harness import cpu
from harness.client import Api, HttpClient
from harness.cpu import CpuProbe
from harness.horde import (
    Artifact,
    RequestShape,
    WorkerSpec,
    check,
    make_artifact,
    pop_and_complete,
    pop_once,
    register_users,
    request_id,
    submit_request,
)
from harness.launcher import ScratchDatabase, Server, ServerOptions, running_server, scratch_database, temporary_workdir
from harness.stats import LatencyRow, Stats, print_result, summarize_samples
from harness.tasks import ERROR_BACKOFF_S, MAX_LOOP_ITERATIONS, run_loop, sleep_until_or

MODELS_PER_WORKER = 3
POP_PIXELS = 512 * 512
REGISTER_PIXELS = 64 * 64  # smaller than every queued request: registering pops take nothing
UNREQUESTED_MODEL = "scale-model-nobody-asked-for"
SINGLE_POPS = 200
FRESH_CHECKS = 10
SNAPSHOT_AGE_S = 1.1  # longer than availability.SNAPSHOT_MAX_AGE_SECONDS: every check below takes a new snapshot
REGISTER_CONCURRENCY = 16
SPARE_CONNECTIONS = 16
STARTUP_TIMEOUT_S = 90.0  # the first start migrates the scratch database
SERVER_ENV = {"OPENHORDE_ALLOW_CUSTOM_MODELS": "true"}  # the models are made up: scale-model-00 …
TEMPLATE = RequestShape(512, 512, 20)


@dataclass
class RunResult:
    """One measured run: N server processes, the lanes' stats and the CPU figures."""

    processes: int
    queued_at_start: int
    stats: Stats
    seconds: float = 0.0
    cores: cpu.CpuFigures | None = None
    per_job: cpu.CpuFigures | None = None

    def samples(self, name: str) -> LatencyRow | None:
        """Latency summary of one endpoint, if it has samples."""
        values = self.stats.samples.get(name)
        return summarize_samples(values) if values else None

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (keys as before the harness split, plus ``cpu_ms_per_job``)."""
        cores = self.cores or {}
        return {
            "processes": self.processes,
            "queued_at_start": self.queued_at_start,
            "pop_ms": self.samples("pop(job)"),
            "empty_pop_ms": self.samples("pop(empty)"),
            "completed": self.stats.completed,
            "jobs_per_s": round(self.stats.completed / self.seconds, 1) if self.seconds else None,
            "errors": dict(self.stats.errors),
            "cpu_cores_busy": {
                "server": cores.get("server"),
                "postgres": cores.get("db"),
                "driver": cores.get("driver"),
            },
            "cpu_ms_per_job": self.per_job,
        }


# --------------------------------------------------------------------------
# setting the queue up


async def fill_queue(api: Api, database: ScratchDatabase, models: list[str], queued: int) -> float:
    """One request per model through the API, then bulk copies in SQL; seconds taken."""
    started = time.monotonic()
    askers = await register_users(api, "asker", len(models))
    templates: list[str] = []
    for key, model in zip(askers, models, strict=True):
        rid = request_id(await submit_request(api, key, replace(TEMPLATE, model=model)))
        if rid is None:
            raise RuntimeError(f"could not queue the template request for {model}: {dict(api.stats.errors)}")
        templates.append(rid)
    copies = max(0, queued // len(models) - 1)
    await copy_requests(database, templates, copies)
    await database.execute("ANALYZE")
    return time.monotonic() - started


async def copy_requests(database: ScratchDatabase, templates: list[str], copies: int) -> None:
    """``copies`` copies of each template request and of its request_models rows, in two statements."""
    columns = await database.fetchval(
        "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_name = 'requests' AND column_name NOT IN ('id', 'created_at', 'last_activity_at', 'queue_rank')",
    )
    t_columns = ",".join(f"t.{c}" for c in columns.split(","))
    new_id = "md5(t.id || ':' || g)::uuid::text"
    await database.execute(
        f"INSERT INTO requests (id, created_at, last_activity_at, queue_rank, {columns}) "
        f"SELECT {new_id}, t.created_at + g * 0.001, t.last_activity_at + g * 0.001, t.queue_rank - 5 * g * 0.001, "
        f"{t_columns} FROM requests t CROSS JOIN generate_series(1, $1::int) g WHERE t.id = ANY($2::text[])",
        copies,
        templates,
    )
    await database.execute(
        "INSERT INTO request_models (request_id, model, queue_rank) "
        "SELECT md5(t.request_id || ':' || g)::uuid::text, t.model, t.queue_rank - 5 * g * 0.001 "
        "FROM request_models t CROSS JOIN generate_series(1, $1::int) g WHERE t.request_id = ANY($2::text[])",
        copies,
        templates,
    )


async def register_workers(api: Api, models: list[str], count: int, owners: int) -> list[WorkerSpec]:
    """``count`` workers of ``owners`` accounts, each announced by one pop that takes nothing."""
    keys = await register_users(api, "owner", owners)
    rng = random.Random(6)
    workers = [
        WorkerSpec(f"scale-worker-{i}", keys[i % owners], POP_PIXELS, tuple(rng.sample(models, MODELS_PER_WORKER)))
        for i in range(count)
    ]
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(worker: WorkerSpec) -> None:
        async with gate:
            jobs = await pop_once(api, replace(worker, max_pixels=REGISTER_PIXELS))
            if jobs is None or jobs:
                raise RuntimeError(f"registering pop of {worker.name} failed or took a job: {jobs}")

    await asyncio.gather(*(one(w) for w in workers))
    return workers


# --------------------------------------------------------------------------
# latency of single calls at this depth


async def timed_pops(api: Api, worker: WorkerSpec, count: int) -> list[float]:
    """``count`` pops one at a time (no other traffic) by ``worker``, jobs left unserved; latencies in ms."""
    stats = Stats()
    sub = api.with_stats(stats)
    for _ in range(count):
        if await pop_once(sub, worker) is None:
            raise RuntimeError(f"pop failed: {dict(stats.errors)}")
    return stats.samples.get("pop(job)", []) + stats.samples.get("pop(empty)", [])


async def measure_single_pops(api: Api, workers: list[WorkerSpec], count: int) -> dict[str, Any]:
    """Pop latency without contention at this queue depth: a worker that gets a job each time, and an idle worker
    whose only model nobody asked for (its pop matches nothing)."""
    idle = replace(workers[0], name=f"{workers[0].name}-idle", models=(UNREQUESTED_MODEL,))
    return {
        "with_job_ms": summarize_samples(await timed_pops(api, workers[0], count)),
        "matching_nothing_ms": summarize_samples(await timed_pops(api, idle, count)),
    }


async def measure_fresh_checks(api: Api, database: ScratchDatabase, count: int) -> LatencyRow:
    """``GET /generate/check`` latency when the process's queue snapshot has just expired, so each call pays for
    reading the servable queue (positions and waits); the calls in between are dictionary lookups."""
    rid = await database.fetchval(
        "SELECT id FROM requests WHERE state = 'queued' ORDER BY queue_rank LIMIT 1"
    )  # the last in line: its position counts the whole queue
    samples: list[float] = []
    for _ in range(count):
        await asyncio.sleep(SNAPSHOT_AGE_S)
        reply = await check(api, rid)
        if reply is None or not reply.ok:
            raise RuntimeError(f"check failed: {dict(api.stats.errors)}")
        samples.append(reply.ms)
    return summarize_samples(samples)


# --------------------------------------------------------------------------
# throughput


async def lane(api: Api, workers: list[WorkerSpec], art: Artifact, seed: int, deadline: float) -> None:
    """Pop -> PUT -> submit as a random worker, again and again, until the deadline."""
    rng = random.Random(seed)
    for _ in range(MAX_LOOP_ITERATIONS):
        if time.monotonic() >= deadline:
            return
        if await pop_and_complete(api, rng.choice(workers), art) is None:
            await sleep_until_or(ERROR_BACKOFF_S, deadline)


async def measure(
    api: Api, workers: list[WorkerSpec], cfg: argparse.Namespace, probe: CpuProbe, result: RunResult
) -> None:
    """``cfg.lanes`` lanes for warm-up + measured seconds; the window's stats and CPU into ``result``."""
    art = make_artifact()
    sub = api.with_stats(result.stats)
    deadline = time.monotonic() + cfg.warmup + cfg.seconds
    tasks = [asyncio.create_task(lane(sub, workers, art, i, deadline)) for i in range(cfg.lanes)]
    before, after = await cpu.measured_window(result.stats, probe, cfg.warmup, cfg.seconds)
    await asyncio.gather(*tasks)
    result.seconds = after.wall - before.wall
    result.cores = {k: None if v is None else round(v, 2) for k, v in cpu.cores_used(before, after).items()}
    result.per_job = cpu.cpu_per_unit(before, after, result.stats.completed)


# --------------------------------------------------------------------------
# the runs


@dataclass
class Setup:
    """What the first server run prepares and the later ones reuse."""

    workers: list[WorkerSpec]
    single_pops: dict[str, Any]


async def prepare(api: Api, database: ScratchDatabase, models: list[str], cfg: argparse.Namespace) -> Setup:
    """Fill the queue, register the workers, time single pops and fresh checks."""
    took = await fill_queue(api, database, models, cfg.queued)
    print(f"queued {cfg.queued} requests over {len(models)} models in {took:.1f} s", flush=True)
    began = time.monotonic()
    workers = await register_workers(api, models, cfg.workers, cfg.owners)
    print(f"registered {len(workers)} workers in {time.monotonic() - began:.1f} s", flush=True)
    single_pops = await measure_single_pops(api, workers, SINGLE_POPS)
    single_pops["fresh_check_ms"] = await measure_fresh_checks(api, database, FRESH_CHECKS)
    print_single_pops(single_pops)
    return Setup(workers, single_pops)


async def run_processes(
    cfg: argparse.Namespace, server: Server, database: ScratchDatabase, models: list[str], setup: Setup | None
) -> tuple[RunResult, Setup]:
    """One measured run on a started server (preparing the queue first if no run did yet)."""
    http = HttpClient(server.url, cfg.lanes + SPARE_CONNECTIONS)
    api = Api(http)
    try:
        if setup is None:
            setup = await prepare(api, database, models, cfg)
        depth = await database.fetchval("SELECT coalesce(sum(n_waiting), 0) FROM requests WHERE state = 'queued'")
        result = RunResult(server.processes, int(depth), Stats())
        await measure(api, setup.workers, cfg, CpuProbe(server.pid, True), result)
    finally:
        await http.aclose()
    return result, setup


def print_single_pops(single: dict[str, Any]) -> None:
    """The single-call latencies."""
    print(f"\n== {SINGLE_POPS} pops one at a time (no other traffic) ==")
    for label, key in (("with a job", "with_job_ms"), ("matching nothing", "matching_nothing_ms")):
        s = single[key]
        print(f"  {label}: p50 {s['p50']} ms  p99 {s['p99']} ms  max {s['max']} ms")
    s = single["fresh_check_ms"]
    print(f"  {FRESH_CHECKS} checks each taking a new queue snapshot: p50 {s['p50']} ms  max {s['max']} ms")


def print_run(result: RunResult) -> None:
    """One run's figures."""
    s = result.summary()
    pop = s["pop_ms"] or {}
    print(f"\n== {result.processes} server process(es), {result.queued_at_start} images queued at start ==")
    print(
        f"  pops with a job: {pop.get('count', 0)}  p50 {pop.get('p50', '-')} ms  p95 {pop.get('p95', '-')} ms"
        f"  p99 {pop.get('p99', '-')} ms  max {pop.get('max', '-')} ms"
    )
    if s["empty_pop_ms"]:
        print(f"  empty pops: {s['empty_pop_ms']['count']}  p99 {s['empty_pop_ms']['p99']} ms")
    print(f"  completed jobs: {result.stats.completed} in {result.seconds:.1f} s = {s['jobs_per_s']} jobs/s")
    cores, per_job = s["cpu_cores_busy"], s["cpu_ms_per_job"] or {}
    print(f"  cores busy: server {cores['server']}, postgres {cores['postgres']}, driver {cores['driver']}")
    print(f"  CPU ms per job: server {per_job.get('server')}, postgres {per_job.get('db')}")
    print(f"  errors: {s['errors'] or 'none'}", flush=True)


def summarize(cfg: argparse.Namespace, results: list[RunResult], setup: Setup | None) -> dict[str, Any]:
    """The RESULT object, and the two target lines."""
    summary: dict[str, Any] = {
        "queued": cfg.queued,
        "workers": cfg.workers,
        "models": cfg.models,
        "lanes": cfg.lanes,
        "single_pops": setup.single_pops if setup else {},
        "runs": [r.summary() for r in results],
    }
    rates = {r.processes: r.stats.completed / r.seconds for r in results if r.seconds}
    if 1 in rates and 2 in rates and rates[1]:
        summary["speedup_2_vs_1"] = round(rates[2] / rates[1], 2)
        print(f"\n2 processes / 1 process throughput: {summary['speedup_2_vs_1']}x (target >= 1.6)")
    p99s = [row["p99"] for r in results if (row := r.samples("pop(job)"))]
    if p99s:
        print(f"worst pop p99: {max(p99s)} ms (target < 50 ms)")
    return summary


async def amain(cfg: argparse.Namespace) -> dict[str, Any]:
    """One database and data directory; a server per process count on it, one after the other."""
    models = [f"scale-model-{i:02d}" for i in range(cfg.models)]
    results: list[RunResult] = []
    setup: Setup | None = None
    async with scratch_database("scale") as database, temporary_workdir("openhorde-scale-") as workdir:
        for processes in cfg.processes:
            options = ServerOptions(processes=processes, env=SERVER_ENV, startup_timeout=STARTUP_TIMEOUT_S)
            async with running_server(workdir, database, options, name=f"server-{processes}") as server:
                result, setup = await run_processes(cfg, server, database, models, setup)
            print_run(result)
            results.append(result)
    return summarize(cfg, results, setup)


def process_counts(text: str) -> list[int]:
    """argparse type: comma-separated server process counts."""
    return [int(x) for x in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--quick`` rewrites the sizes)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10,000 queued, 200 workers, 8 s per run")
    p.add_argument("--queued", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=1_000)
    p.add_argument("--owners", type=int, default=50)
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--lanes", type=int, default=32, help="concurrent pop/upload/submit loops")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--processes", type=process_counts, default=[1, 2], help="e.g. 1,2 or 2,1")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.queued, cfg.workers, cfg.seconds, cfg.warmup = 10_000, 200, 8.0, 2.0
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    cfg = parse_args(argv)
    print_result(run_loop(amain(cfg), not cfg.no_uvloop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
