"""Phase 2: pop latency against a deep queue.

``queued`` one-image 512x512 requests (whatever phase 1's load: the steps below need requests that a small
worker cannot take) are queued with no worker popping; then:

* no-match: a worker whose ``max_pixels`` is too small for every queued request pops ``deep_nomatch``
  times: empty pops that look past the whole queue of its model;
* sequential: one worker pops ``deep_pops`` jobs, uploading and submitting each (the queue drains slowly);
* concurrent: ``deep_workers`` workers share another ``deep_pops`` pops.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from harness.client import Api
from harness.horde import (
    PER_USER_REQUESTS,
    Artifact,
    RequestShape,
    WorkerSpec,
    cancel_requests,
    owners_needed,
    pop_and_complete,
    queue_depth,
    register_users,
    request_id,
    submit_request,
    worker_specs,
)
from harness.stats import Stats, latency_summary, print_errors, print_latency_table, summarize_samples
from harness.tasks import ERROR_BACKOFF_S, sleep_until_or
from scenarios.config import Config

DEEP_REQUEST = RequestShape(512, 512)
NOMATCH_MAX_PIXELS = 256 * 256  # smaller than every queued request


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

    def pop_p99(self) -> float | None:
        """Worst pop p99 over the three pop steps (the target's figure)."""
        worst: float | None = None
        for stats in (self.nomatch, self.sequential, self.concurrent):
            for name in ("pop(job)", "pop(empty)"):
                if stats.samples.get(name):
                    p99 = float(summarize_samples(stats.samples[name])["p99"])
                    worst = p99 if worst is None else max(worst, p99)
        return worst


async def enqueue(api: Api, keys: list[str], total: int, concurrency: int, deadline: float) -> list[str]:
    """Create ``total`` requests (PER_USER_REQUESTS per key); their ids."""
    ids: list[str] = []
    indexes = iter(range(total))

    async def feeder() -> None:
        for k in indexes:
            if time.monotonic() >= deadline:
                return
            rid = request_id(await submit_request(api, keys[k // PER_USER_REQUESTS], DEEP_REQUEST))
            if rid is not None:
                ids.append(rid)

    await asyncio.gather(*(feeder() for _ in range(concurrency)))
    return ids


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


async def deep_enqueue(api: Api, cfg: Config, res: DeepResult, tag: str) -> list[str]:
    """Register enough users and fill the queue; returns request ids."""
    users = math.ceil(cfg.queued / PER_USER_REQUESTS)
    keys = await register_users(api, f"bench-deep{tag}", users)
    start = time.monotonic()
    deadline = start + cfg.phase_timeout
    ids = await enqueue(api.with_stats(res.enqueue), keys, cfg.queued, cfg.enqueue_concurrency, deadline)
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


async def run_deep(api: Api, cfg: Config, art: Artifact, tag: str) -> DeepResult:
    """Phase 2: fill the queue, then measure pops against it."""
    res = DeepResult()
    ids = await deep_enqueue(api, cfg, res, tag)
    res.depth_before = await queue_depth(api)
    await deep_pops(api, cfg, res, art, tag)
    res.depth_after = await queue_depth(api)
    if cfg.url is not None:  # not our server: leave its queue as we found it
        await cancel_requests(api, ids, cfg.enqueue_concurrency)
    return res


def deep_summary(res: DeepResult) -> dict[str, Any]:
    """JSON-able summary of phase 2."""
    out: dict[str, Any] = {
        "enqueued": res.enqueued,
        "enqueue_s": round(res.enqueue_s, 3),
        "enqueue_per_s": round(res.enqueued / res.enqueue_s, 1) if res.enqueue_s > 0 else None,
        "queue_depth_before_pops": res.depth_before,
        "queue_depth_after_pops": res.depth_after,
        "pop_p99_worst_ms": res.pop_p99(),
    }
    for name, stats in res.steps().items():
        out[name] = {
            "latency_ms": latency_summary(stats),
            "completed": stats.completed,
            "errors": dict(stats.errors),
        }
    return out


def print_deep(title: str, cfg: Config, res: DeepResult) -> None:
    """Human-readable phase-2 report."""
    rate = res.enqueued / res.enqueue_s if res.enqueue_s > 0 else 0.0
    print(f"\n== phase 2: deep queue ({title}, {cfg.queued} requested) ==")
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
