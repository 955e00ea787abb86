"""The endpoint-cost step: server CPU per call of single endpoints, and per job of a bare cycle.

``COST_LANES`` lanes call one thing back to back for ``cost_seconds``; nothing else runs meanwhile, so the
server's CPU over that window divided by the calls is what one call costs. It explains phase 1's CPU per
job: phase 1 ~ cycle(bare) + checks per job x check(queued) + status + empty pops per job x pop(empty).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from harness import cpu
from harness.client import Api
from harness.cpu import CpuProbe
from harness.horde import (
    API,
    IDLE_MODEL,
    Artifact,
    RequestShape,
    WorkerSpec,
    owners_needed,
    pop_and_complete,
    register_users,
    request_id,
    submit_request,
    worker_specs,
)
from harness.stats import Stats, fmt_num, latency_summary
from harness.tasks import ERROR_BACKOFF_S, MAX_LOOP_ITERATIONS, sleep_until_or

COST_LANES = 4
FINISH_POPS = 20  # pops tried to get the one request the check(done)/status lanes read
DRAIN_POPS = 100  # more than the requests the step can leave queued: the untouched one and one per lane
Lane = Callable[[Api, int, float], Coroutine[Any, Any, None]]
BARE_CYCLE = "cycle(bare)"
ROW_NOTES = {
    "heartbeat": "the framework's floor",
    "check(queued)": "a queued request nobody touches: its answer does not change",
    "check(done)": "a finished request",
    "status": "a finished request, with its image URL",
    "pop(empty)": f"a worker serving only {IDLE_MODEL}, which nothing asks for",
    BARE_CYCLE: "async+pop+upload+submit, no polling: per job; latency is the pop's",
}


@dataclass(frozen=True)
class CostCall:
    """One endpoint call repeated by a lane."""

    name: str
    method: str
    url: str
    apikey: str | None = None
    body: Any = None


def repeat_call(call: CostCall) -> Lane:
    """A lane calling one endpoint back to back until the deadline; each 2xx counts as one unit."""

    async def lane(api: Api, _: int, deadline: float) -> None:
        for _ in range(MAX_LOOP_ITERATIONS):
            if time.monotonic() >= deadline:
                return
            reply = await api.call(call.name, call.method, call.url, apikey=call.apikey, body=call.body, record=False)
            if reply is not None and reply.ok:
                api.stats.add(call.name, reply.ms)
                api.stats.job_done()

    return lane


def bare_cycle(user: str, workers: list[WorkerSpec], art: Artifact, shape: RequestShape) -> Lane:
    """A lane doing async -> pop -> upload -> submit, with no polling; each submit counts as one unit."""

    async def lane(api: Api, index: int, deadline: float) -> None:
        for _ in range(MAX_LOOP_ITERATIONS):
            if time.monotonic() >= deadline:
                return
            if request_id(await submit_request(api, user, shape)) is None:
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
    return {
        "calls": stats.completed,
        "per_s": round(stats.completed / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_ms_per_call": cpu.cpu_per_unit(before, after, stats.completed),
        "latency_ms": latency_summary(stats).get("pop(job)" if name == BARE_CYCLE else name),
        "errors": dict(stats.errors),
    }


async def finished_request(api: Api, user: str, worker: WorkerSpec, art: Artifact, shape: RequestShape) -> str | None:
    """Create one request and serve it, so that check(done) and status read a finished request."""
    rid = request_id(await submit_request(api, user, shape))
    for _ in range(FINISH_POPS):
        if rid is None or await pop_and_complete(api, worker, art):
            break
    return rid


def cost_calls(done: str | None, queued: str | None, idle: WorkerSpec) -> list[CostCall]:
    """The single-endpoint lanes, cheapest first."""
    calls = [CostCall("heartbeat", "GET", f"{API}/status/heartbeat")]
    if queued is not None:
        calls.append(CostCall("check(queued)", "GET", f"{API}/generate/check/{queued}"))
    if done is not None:
        calls.append(CostCall("check(done)", "GET", f"{API}/generate/check/{done}"))
        calls.append(CostCall("status", "GET", f"{API}/generate/status/{done}"))
    calls.append(CostCall("pop(empty)", "POST", f"{API}/generate/pop", idle.apikey, idle.pop_body()))
    return calls


async def run_costs(
    api: Api, probe: CpuProbe, art: Artifact, shape: RequestShape, seconds: float, tag: str
) -> dict[str, Any]:
    """Every lane in turn, on an otherwise idle server. The queued request is created after the finished one,
    so that the finishing pop cannot take it; what is left queued at the end is served, so that phase 2
    starts on an empty queue."""
    user, *owners = await register_users(api, f"bench-cost{tag}", 1 + owners_needed(COST_LANES + 1))
    workers = worker_specs(f"bench-cost-worker{tag}", COST_LANES, owners)
    done = await finished_request(api, user, workers[0], art, shape)
    queued = request_id(await submit_request(api, user, shape))
    idle = WorkerSpec(f"bench-cost-idle{tag}", owners[-1], models=(IDLE_MODEL,))
    lanes = {c.name: repeat_call(c) for c in cost_calls(done, queued, idle)}
    lanes[BARE_CYCLE] = bare_cycle(user, workers, art, shape)
    result = {name: await cost_of(api, name, lane, probe, seconds) for name, lane in lanes.items()}
    await drain(api.with_stats(Stats()), workers[0], art)
    return result


async def drain(api: Api, worker: WorkerSpec, art: Artifact) -> None:
    """Serve whatever is still queued for ``worker`` (bounded)."""
    for _ in range(DRAIN_POPS):
        if not await pop_and_complete(api, worker, art):
            return


def print_costs(title: str, res: dict[str, Any], seconds: float) -> None:
    """Human-readable per-endpoint cost table."""
    print(f"\n== endpoint cost ({title}, {COST_LANES} lanes back to back, {seconds:g} s each) ==")
    print(f"  {'endpoint':<14}{'calls/s':>9}{'server':>9}{'db':>9}{'srv+db':>9}{'p50':>9}{'p99':>9}   what")
    for name, row in res.items():
        cpu_ms = row["cpu_ms_per_call"]
        lat = row["latency_ms"] or {"p50": math.nan, "p99": math.nan}
        print(
            f"  {name:<14}{row['per_s']:>9.1f}{fmt_num(cpu_ms['server']):>9}{fmt_num(cpu_ms['db']):>9}"
            f"{fmt_num(cpu_ms['total']):>9}{lat['p50']:>9.1f}{lat['p99']:>9.1f}   {ROW_NOTES.get(name, '')}"
        )
        for key, count in sorted(row["errors"].items()):
            print(f"    error {key}: {count}")
    print("  server/db/srv+db: CPU ms per call (per job for cycle(bare)); p50/p99: latency ms")
