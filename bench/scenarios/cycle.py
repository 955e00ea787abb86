"""Phase 1: simulated workers and clients cycle jobs through the server; jobs/s, CPU per job, latency.

Workers loop pop -> (PUT the WebP, submit) or, when the pop was empty, sleep ``idle_sleep``. Each client
keeps ``inflight`` requests going: async, a check every ``check_interval`` until done, one status, next.
After the warm-up the window is measured; afterwards the requests still outstanding are cancelled so that
the next phase starts on an empty queue.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

from harness import cpu
from harness.client import Api, ms_since
from harness.cpu import CpuProbe, CpuSnapshot
from harness.horde import (
    Artifact,
    WorkerSpec,
    cancel_requests,
    check,
    fetch_status,
    image_roundtrip,
    owners_needed,
    pop_and_complete,
    register_users,
    request_id,
    submit_request,
    worker_specs,
)
from harness.stats import Stats, endpoint_names, fmt_ms, fmt_num, latency_summary, print_errors, print_latency_table
from harness.tasks import (
    ERROR_BACKOFF_S,
    MAX_LOOP_ITERATIONS,
    STOP_GRACE_S,
    sleep_until_or,
    spawn,
    stop_tasks,
)
from scenarios.config import Config, Load

CANCEL_CONCURRENCY = 8
CLIENT_BOUND_SHARE = 0.9  # jobs/s this close to the clients' ceiling says more about the clients than the server


async def worker_loop(
    api: Api, spec: WorkerSpec, art: Artifact, idle_sleep: float, stop: asyncio.Event, deadline: float
) -> None:
    """A worker as real ones behave: a job is uploaded and submitted at once, an empty pop waits."""
    for _ in range(MAX_LOOP_ITERATIONS):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        got = await pop_and_complete(api, spec, art)
        if got is None:
            await sleep_until_or(ERROR_BACKOFF_S, deadline)
        elif got == 0:
            await sleep_until_or(idle_sleep, deadline)


async def wait_done(api: Api, rid: str, interval: float, stop: asyncio.Event, deadline: float) -> bool:
    """Check every ``interval`` until done; False on error, stop or timeout."""
    max_polls = int(max(0.0, deadline - time.monotonic()) / max(interval, 0.001)) + 2
    for _ in range(min(max_polls, MAX_LOOP_ITERATIONS)):
        await sleep_until_or(interval, deadline)
        if stop.is_set():
            return False
        reply = await check(api, rid)
        if reply is None or not reply.ok:
            return False
        if reply.get("done"):
            if reply.get("faulted"):
                api.stats.fail("check", "done-but-faulted")
                return False
            return True
        if time.monotonic() >= deadline:
            break
    api.stats.fail("check", "timeout not-done")
    return False


async def client_lane(
    api: Api, apikey: str, cfg: Config, stop: asyncio.Event, deadline: float, outstanding: set[str]
) -> None:
    """One in-flight request slot of a client: async -> check* -> status, again and again. ``outstanding``
    holds the requests queued and not yet seen done, for cancelling when the phase ends."""
    for _ in range(MAX_LOOP_ITERATIONS):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        start = time.perf_counter()
        rid = request_id(await submit_request(api, apikey, cfg.load.request))
        if rid is None:
            await sleep_until_or(ERROR_BACKOFF_S, deadline)
            continue
        outstanding.add(rid)
        req_deadline = min(deadline, time.monotonic() + cfg.request_timeout)
        if await wait_done(api, rid, cfg.load.check_interval, stop, req_deadline):
            outstanding.discard(rid)
            api.stats.add("e2e", ms_since(start))
            api.stats.last_done = rid
            await fetch_status(api, rid)


async def run_cycle(api: Api, cfg: Config, probe: CpuProbe, art: Artifact, workers: int, tag: str) -> dict[str, Any]:
    """Phase 1 with ``workers`` simulated workers; returns the summary."""
    owners = await register_users(api, f"bench-owner{tag}", owners_needed(workers))
    users = await register_users(api, f"bench-client{tag}", cfg.load.clients)
    specs = worker_specs(f"bench-worker{tag}", workers, owners)
    stop = asyncio.Event()
    outstanding: set[str] = set()
    deadline = time.monotonic() + cfg.warmup + cfg.duration + STOP_GRACE_S
    coros = [worker_loop(api, s, art, cfg.load.idle_sleep, stop, deadline) for s in specs]
    coros += [
        client_lane(api, users[lane // cfg.load.inflight], cfg, stop, deadline, outstanding)
        for lane in range(cfg.load.lanes)
    ]
    tasks = spawn(coros)
    try:
        before, after = await cpu.measured_window(api.stats, probe, cfg.warmup, cfg.duration)
    finally:
        await stop_tasks(tasks, stop)
    summary = cycle_summary(api.stats, before, after, cfg.load)
    summary["image_roundtrip_ok"] = await image_roundtrip(api, api.stats.last_done, art)
    await cancel_requests(api.with_stats(Stats()), sorted(outstanding), CANCEL_CONCURRENCY)
    return summary


def calls_per_job(stats: Stats) -> dict[str, float]:
    """Successful calls per completed job, per endpoint (the load mix)."""
    if stats.completed == 0:
        return {}
    names = [n for n in endpoint_names(stats) if n != "e2e"]
    return {n: round(len(stats.samples[n]) / stats.completed, 2) for n in names}


def cycle_summary(stats: Stats, before: CpuSnapshot, after: CpuSnapshot, load: Load) -> dict[str, Any]:
    """Throughput, CPU, latency and errors of phase 1."""
    elapsed = after.wall - before.wall
    rate = round(stats.completed / elapsed, 2) if elapsed > 0 else None
    ceiling = None if math.isinf(load.ceiling) else round(load.ceiling, 1)
    return {
        "measured_s": round(elapsed, 3),
        "completed": stats.completed,
        "jobs_per_s": rate,
        "client_ceiling_jobs_per_s": ceiling,
        "client_bound": None if rate is None or ceiling is None else rate >= CLIENT_BOUND_SHARE * ceiling,
        "cpu_ms_per_job": cpu.cpu_per_unit(before, after, stats.completed),
        "cores_busy": cpu.cores_used(before, after),
        "calls_per_job": calls_per_job(stats),
        "latency_ms": latency_summary(stats),
        "errors": dict(stats.errors),
    }


def print_cycle(title: str, stats: Stats, res: dict[str, Any], db: str) -> None:
    """Human-readable phase-1 report."""
    cpu_ms = res["cpu_ms_per_job"]
    print(f"\n== phase 1: cycle ({title}, {res['measured_s']:.1f} s measured) ==")
    print(f"  completed jobs: {res['completed']} ({res['jobs_per_s']} jobs/s)")
    bound = " -- client-bound: the clients asked for no more" if res["client_bound"] else ""
    print(f"  clients' ceiling: {res['client_ceiling_jobs_per_s']} jobs/s (in flight / check interval){bound}")
    print(f"  uploaded image served back unchanged: {res['image_roundtrip_ok']}")
    print(
        f"  CPU per job: server {fmt_ms(cpu_ms['server'])}, db {fmt_ms(cpu_ms['db'])}"
        f"{' (in server process)' if db == 'sqlite' else ''},"
        f" server+db {fmt_ms(cpu_ms['total'])}; driver {fmt_ms(cpu_ms['driver'])}"
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
