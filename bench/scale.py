"""Scale benchmark: pop latency and completed jobs/s with a deep queue, 1 vs 2 server processes.

What it does
------------
1. Creates a scratch PostgreSQL database ``scale_<random>`` (dropped at the end) and starts
   ``openhorde serve --workers 1`` on it (``OPENHORDE_RATE_LIMITS=off``, ``OPENHORDE_ALLOW_CUSTOM_MODELS=true``).
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
   jobs/s, queue depth at the start, and CPU seconds and cores busy of the server tree, PostgreSQL and this
   driver (``/proc``, as in ``server_cycle.py``) -- the figures that say which one is the bottleneck.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, user postgres, trust)::

    .venv/bin/python bench/scale.py            # 100,000 queued, 1,000 workers, 20 models, 20 s per run
    .venv/bin/python bench/scale.py --quick    # 10,000 queued, 200 workers, 8 s per run

The last line is ``RESULT {json}``. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import server_cycle as sc

MODELS_PER_WORKER = 3
POP_PIXELS = 512 * 512
REGISTER_PIXELS = 64 * 64  # smaller than every queued request: registering pops take nothing
UNREQUESTED_MODEL = "scale-model-nobody-asked-for"
SINGLE_POPS = 200
FRESH_CHECKS = 10
SNAPSHOT_AGE_S = 1.1  # longer than availability.SNAPSHOT_MAX_AGE_SECONDS: every check below takes a new snapshot


@dataclass
class RunResult:
    processes: int
    queued_at_start: int
    pops: list[float] = field(default_factory=list)
    empty_pops: list[float] = field(default_factory=list)
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "queued_at_start": self.queued_at_start,
            "pop_ms": sc.summarize_samples(self.pops) if self.pops else None,
            "empty_pop_ms": sc.summarize_samples(self.empty_pops) if self.empty_pops else None,
            "completed": self.completed,
            "jobs_per_s": round(self.completed / self.seconds, 1) if self.seconds else None,
            "errors": self.errors,
            "cpu_cores_busy": self.cpu,
        }


class Client:
    """JSON calls over the sibling benchmark's lean keep-alive HTTP client."""

    def __init__(self, url: str, connections: int) -> None:
        self.transport = sc.RawTransport(url, connections)

    async def call(self, method: str, path: str, apikey: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if apikey:
            headers["apikey"] = apikey
        data = None if body is None else json.dumps(body).encode()
        status, raw = await self.transport.request(method, f"{sc.API}/{path}", headers, data)
        return status, sc.parse_json(raw)


async def pg(database: str, query: str, *args: Any) -> Any:
    conn = await sc.asyncpg_module().connect(sc.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database, timeout=10)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def register_user(client: Client, name: str) -> str:
    status, data = await client.call("POST", "register", body={"username": name})
    assert status == 201, (status, data)
    return str(data["apikey"])


async def fill_queue(client: Client, database: str, models: list[str], queued: int) -> float:
    """One request per model through the API, then bulk copies in SQL; seconds taken."""
    started = time.monotonic()
    body = {"prompt": "scale", "params": {"width": 512, "height": 512, "steps": 20}, "r2": True}
    templates: list[str] = []
    for model in models:
        apikey = await register_user(client, f"asker-{model}")
        status, data = await client.call("POST", "generate/async", apikey, {**body, "models": [model]})
        assert status == 202, (status, data)
        templates.append(data["id"])
    copies = max(0, queued // len(models) - 1)
    columns = await pg(
        database,
        "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_name = 'requests' AND column_name NOT IN ('id', 'created_at', 'last_activity_at', 'queue_rank')",
    )
    t_columns = ",".join(f"t.{c}" for c in columns.split(","))
    new_id = "md5(t.id || ':' || g)::uuid::text"
    await pg(
        database,
        f"INSERT INTO requests (id, created_at, last_activity_at, queue_rank, {columns}) "
        f"SELECT {new_id}, t.created_at + g * 0.001, t.last_activity_at + g * 0.001, t.queue_rank - 5 * g * 0.001, "
        f"{t_columns} FROM requests t CROSS JOIN generate_series(1, $1::int) g WHERE t.id = ANY($2::text[])",
        copies,
        templates,
    )
    await pg(
        database,
        "INSERT INTO request_models (request_id, model, queue_rank) "
        "SELECT md5(t.request_id || ':' || g)::uuid::text, t.model, t.queue_rank - 5 * g * 0.001 "
        "FROM request_models t CROSS JOIN generate_series(1, $1::int) g WHERE t.request_id = ANY($2::text[])",
        copies,
        templates,
    )
    await pg(database, "ANALYZE")
    return time.monotonic() - started


@dataclass(frozen=True)
class Worker:
    name: str
    apikey: str
    models: list[str]


async def register_workers(client: Client, models: list[str], count: int, owners: int) -> list[Worker]:
    keys = [await register_user(client, f"owner-{i}") for i in range(owners)]
    rng = random.Random(6)
    workers = [
        Worker(f"scale-worker-{i}", keys[i % owners], rng.sample(models, MODELS_PER_WORKER)) for i in range(count)
    ]
    gate = asyncio.Semaphore(16)

    async def one(worker: Worker) -> None:
        async with gate:
            body = {"name": worker.name, "models": worker.models, "max_pixels": REGISTER_PIXELS}
            status, data = await client.call("POST", "generate/pop", worker.apikey, body)
            assert status == 200 and not data.get("id"), (status, data)

    await asyncio.gather(*(one(w) for w in workers))
    return workers


async def measure(
    client: Client,
    workers: list[Worker],
    lanes: int,
    warmup: float,
    seconds: float,
    webp: bytes,
    result: RunResult,
    probe: sc.CpuProbe,
) -> None:
    recording = False
    stop_at = time.monotonic() + warmup + seconds

    async def lane(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            worker = rng.choice(workers)
            body = {"name": worker.name, "models": worker.models, "max_pixels": POP_PIXELS, "amount": 1}
            began = time.perf_counter()
            try:
                status, job = await client.call("POST", "generate/pop", worker.apikey, body)
                ms = (time.perf_counter() - began) * 1000
                if status != 200:
                    result.errors[f"pop {status}"] = result.errors.get(f"pop {status}", 0) + 1
                    continue
                if not job.get("id"):
                    if recording:
                        result.empty_pops.append(ms)
                    continue
                if recording:
                    result.pops.append(ms)
                put_status, _ = await client.transport.request("PUT", job["r2_upload"], {}, webp)
                status, _ = await client.call(
                    "POST", "generate/submit", worker.apikey, {"id": job["id"], "generation": "R2", "seed": 1}
                )
                if put_status == 200 and status == 200:
                    result.completed += recording
                else:
                    key = f"submit {put_status}/{status}"
                    result.errors[key] = result.errors.get(key, 0) + 1
            except sc.TransportError as exc:
                result.errors[f"transport {exc}"] = result.errors.get(f"transport {exc}", 0) + 1

    tasks = [asyncio.create_task(lane(i)) for i in range(lanes)]
    await asyncio.sleep(warmup)
    recording = True
    before = probe.snapshot()
    await asyncio.sleep(seconds)
    after = probe.snapshot()
    result.seconds = after.wall - before.wall
    await asyncio.gather(*tasks)
    wall = result.seconds
    result.cpu = {
        "server": None
        if before.server is None or after.server is None
        else round((after.server - before.server) / wall, 2),
        "postgres": None if before.db is None or after.db is None else round((after.db - before.db) / wall, 2),
        "driver": round((after.driver - before.driver) / wall, 2),
    }


async def probe_pops(client: Client, worker: Worker, count: int) -> list[float]:
    """``count`` pops one at a time (no other traffic) by ``worker``; their latencies in ms."""
    samples: list[float] = []
    body = {"name": worker.name, "models": worker.models, "max_pixels": POP_PIXELS, "amount": 1}
    for _ in range(count):
        began = time.perf_counter()
        status, _ = await client.call("POST", "generate/pop", worker.apikey, body)
        assert status == 200, status
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def measure_single_pops(client: Client, workers: list[Worker], count: int) -> dict[str, Any]:
    """Pop latency without contention at this queue depth: a worker that gets a job each time, and an idle worker
    whose only model nobody asked for (its pop matches nothing)."""
    idle = Worker(f"{workers[0].name}-idle", workers[0].apikey, [UNREQUESTED_MODEL])
    return {
        "with_job_ms": sc.summarize_samples(await probe_pops(client, workers[0], count)),
        "matching_nothing_ms": sc.summarize_samples(await probe_pops(client, idle, count)),
    }


async def measure_fresh_checks(client: Client, database: str, count: int) -> dict[str, Any]:
    """``GET /generate/check`` latency when the process's queue snapshot has just expired, so each call pays for
    reading the servable queue (positions and waits); the calls in between are dictionary lookups."""
    request_id = await pg(
        database, "SELECT id FROM requests WHERE state = 'queued' ORDER BY queue_rank LIMIT 1"
    )  # the last in line: its position counts the whole queue
    samples: list[float] = []
    for _ in range(count):
        await asyncio.sleep(SNAPSHOT_AGE_S)
        began = time.perf_counter()
        status, _ = await client.call("GET", f"generate/check/{request_id}")
        assert status == 200, status
        samples.append((time.perf_counter() - began) * 1000)
    return sc.summarize_samples(samples)


async def run_processes(
    cfg: argparse.Namespace,
    database: str,
    db_url: str,
    data_dir: Path,
    processes: int,
    workers: list[Worker] | None,
    models: list[str],
    single_pops: dict[str, Any],
) -> tuple[RunResult, list[Worker]]:
    port = sc.free_port()
    log_path = data_dir.parent / f"server-{processes}.log"
    proc = sc.start_server(
        port,
        data_dir,
        db_url,
        log_path,
        extra_args=["--workers", str(processes)],
        extra_env={"OPENHORDE_ALLOW_CUSTOM_MODELS": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await sc.wait_ready(url, 90, proc)
        client = Client(url, cfg.lanes + 16)
        try:
            if workers is None:
                took = await fill_queue(client, database, models, cfg.queued)
                print(f"queued {cfg.queued} requests over {len(models)} models in {took:.1f} s", flush=True)
                began = time.monotonic()
                workers = await register_workers(client, models, cfg.workers, cfg.owners)
                print(f"registered {len(workers)} workers in {time.monotonic() - began:.1f} s", flush=True)
                single_pops.update(await measure_single_pops(client, workers, SINGLE_POPS))
                single_pops["fresh_check_ms"] = await measure_fresh_checks(client, database, FRESH_CHECKS)
                print_single_pops(single_pops)
            depth = await pg(database, "SELECT coalesce(sum(n_waiting), 0) FROM requests WHERE state = 'queued'")
            result = RunResult(processes, int(depth))
            probe = sc.CpuProbe(proc.pid, True)
            await measure(client, workers, cfg.lanes, cfg.warmup, cfg.seconds, sc.make_artifact().webp, result, probe)
        finally:
            await client.transport.aclose()
    finally:
        sc.stop_server(proc)
        sc.report_log(log_path, None)
    return result, workers


def print_single_pops(single: dict[str, Any]) -> None:
    print(f"\n== {SINGLE_POPS} pops one at a time (no other traffic) ==")
    for label, key in (("with a job", "with_job_ms"), ("matching nothing", "matching_nothing_ms")):
        s = single[key]
        print(f"  {label}: p50 {s['p50']} ms  p99 {s['p99']} ms  max {s['max']} ms")
    s = single["fresh_check_ms"]
    print(f"  {FRESH_CHECKS} checks each taking a new queue snapshot: p50 {s['p50']} ms  max {s['max']} ms")


def print_run(result: RunResult) -> None:
    s = result.summary()
    pop = s["pop_ms"] or {}
    print(f"\n== {result.processes} server process(es), {result.queued_at_start} images queued at start ==")
    print(
        f"  pops with a job: {pop.get('count', 0)}  p50 {pop.get('p50', '-')} ms  p95 {pop.get('p95', '-')} ms"
        f"  p99 {pop.get('p99', '-')} ms  max {pop.get('max', '-')} ms"
    )
    if s["empty_pop_ms"]:
        print(f"  empty pops: {s['empty_pop_ms']['count']}  p99 {s['empty_pop_ms']['p99']} ms")
    print(f"  completed jobs: {result.completed} in {result.seconds:.1f} s = {s['jobs_per_s']} jobs/s")
    print(
        f"  cores busy: server {s['cpu_cores_busy']['server']}, postgres {s['cpu_cores_busy']['postgres']},"
        f" driver {s['cpu_cores_busy']['driver']}"
    )
    print(f"  errors: {result.errors or 'none'}", flush=True)


async def amain(cfg: argparse.Namespace) -> dict[str, Any]:
    database = f"scale_{secrets.token_hex(5)}"
    models = [f"scale-model-{i:02d}" for i in range(cfg.models)]
    await sc.pg_admin(f'CREATE DATABASE "{database}"')
    tmp = Path(tempfile.mkdtemp(prefix="openhorde-scale-"))
    results: list[RunResult] = []
    single_pops: dict[str, Any] = {}
    try:
        workers: list[Worker] | None = None
        for processes in cfg.processes:
            db_url = sc.PG_SERVER_URL.format(db=database)
            result, workers = await run_processes(
                cfg, database, db_url, tmp / "data", processes, workers, models, single_pops
            )
            print_run(result)
            results.append(result)
    finally:
        await sc.pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {
        "queued": cfg.queued,
        "workers": cfg.workers,
        "models": cfg.models,
        "lanes": cfg.lanes,
        "single_pops": single_pops,
        "runs": [r.summary() for r in results],
    }
    rates = {r.processes: r.completed / r.seconds for r in results if r.seconds}
    if 1 in rates and 2 in rates and rates[1]:
        summary["speedup_2_vs_1"] = round(rates[2] / rates[1], 2)
        print(f"\n2 processes / 1 process throughput: {summary['speedup_2_vs_1']}x (target >= 1.6)")
    p99s = [r.summary()["pop_ms"]["p99"] for r in results if r.pops]
    if p99s:
        print(f"worst pop p99: {max(p99s)} ms (target < 50 ms)")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10,000 queued, 200 workers, 8 s per run")
    p.add_argument("--queued", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=1_000)
    p.add_argument("--owners", type=int, default=50)
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--lanes", type=int, default=32, help="concurrent pop/upload/submit loops")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    cfg = p.parse_args()
    if cfg.quick:
        cfg.queued, cfg.workers, cfg.seconds, cfg.warmup = 10_000, 200, 8.0, 2.0
    summary = asyncio.run(amain(cfg))
    print("RESULT " + json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
