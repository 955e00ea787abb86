"""Chaos suite: two `openhorde serve` processes on one PostgreSQL, three real `openhorde worker` processes
serving the built-in tiny model and a stream of clients, while workers are SIGKILLed mid-job (and replaced),
each server restarts once, PostgreSQL's connections are terminated and a worker is stopped (SIGSTOP) past its
lease. Afterwards every accepted request has ended (done, or faulted with a reason), none is lost, none
delivered twice, the jobs held by killed and stalled workers expired unpaid and were re-queued (the stalled one's
image delivered by another job), the stalled worker's late submit was refused and it carried on working, and the
ledger balances.

"Mid-job" is read from the database: a worker is signalled while the jobs table shows it holding a job in
state 'processing' (and, for a kill, still after the process is gone). Each worker takes one job at a time
(`--threads 1 --queue-size 0`) and talks to one server; they are spread over both.

Bounded: about 35 s of traffic and faults (longer while a replacement worker loads: the third kill waits for
one), every wait has a timeout, at most `DRAIN_TIMEOUT_S` to finish the
queue; loopback only. The counts are printed (`pytest -s`) and written to test-artifacts/chaos-counts.json;
the server and worker logs are copied to test-artifacts/chaos-logs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from openhorde.cli.processes import log_entries
from openhorde.worker.models.catalogue import TINY_MODEL_NAME
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.e2e.conftest import LiveServer, WorkerProcess, free_port, openhorde_command, wait_until_up

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 12  # several jobs long (a 64² 6-step job: 0.7 s alone, 1-7 s in this crowd), about a server restart
STALL_S = LEASE_S + 3  # the job was popped before the stop: past its lease and at least one maintenance pass
CLIENTS = 3
CLIENT_PAUSE_S = 1.0
MAX_WAITING = 3
"""Clients hold back while this many images wait for a worker: how fast the workers go on two shared cores varies
tenfold (a 64² 6-step image takes 0.7 s alone, 5 s in a crowd), and the queue must stay small enough to drain."""
TRAFFIC_S = 36.0
DRAIN_TIMEOUT_S = 60.0
WORKER_ONLINE_TIMEOUT_S = 150.0  # torch takes 10 s to import alone, 90 s on a busy machine
HOLD_TIMEOUT_S = 20.0  # how long to wait for a worker to hold a job before signalling it anyway
VERDICT_TIMEOUT_S = 20.0  # how long the resumed worker may take to try its late submit
REQUEST_BODY: dict[str, Any] = {
    "prompt": "chaos",
    "models": [TINY_MODEL_NAME],
    "params": {"width": 64, "height": 64, "steps": 6},
    "r2": True,
}


@dataclass
class Cluster:
    """Two server processes sharing one database, one data directory (secret, blobs) and nothing else."""

    tmp: Path
    database_url: str
    ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    servers: list[LiveServer] = field(default_factory=list)
    starts: int = 0

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self, index: int) -> LiveServer:
        env = dict(os.environ)
        env.update(
            OPENHORDE_DATABASE_URL=self.database_url,
            OPENHORDE_RATE_LIMITS="off",
            OPENHORDE_ALLOW_CUSTOM_MODELS="true",  # the workers' openhorde-tiny is in no server catalogue
            OPENHORDE_JOB_LEASE_SECONDS=str(LEASE_S),
            OPENHORDE_MAINTENANCE_INTERVAL_SECONDS="1",
        )
        self.starts += 1
        log_path = self.tmp / f"server{index}-{self.starts}.log"
        cmd = [*openhorde_command(), "serve", "--host", "127.0.0.1", "--port", str(self.ports[index])]
        cmd += ["--data-dir", str(self.tmp / "data")]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        url = self.urls[index]
        server = LiveServer(url, url + "/api/", "postgres", self.tmp / "data", log_path, proc)
        if index < len(self.servers):
            self.servers[index] = server
        else:
            self.servers.append(server)
        wait_until_up(server)
        return server

    def restart(self, index: int) -> None:
        self.servers[index].stop()  # SIGTERM: uvicorn finishes the calls in flight
        self.start(index)


def pg_terminate(database: str) -> int:
    """Terminate every connection to the test database (the servers' pools); how many."""

    async def terminate() -> int:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            return count
        finally:
            await conn.close()

    return asyncio.run(terminate())


def pg_fetch(database: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(fetch())


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds passed; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@dataclass
class TinyWorkers:
    """Real `openhorde worker` processes serving openhorde-tiny, each on one server, one job at a time."""

    tmp: Path
    database: str
    apikey: str
    urls: dict[str, str] = field(default_factory=dict)
    current: dict[str, WorkerProcess] = field(default_factory=dict)
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, name: str, url: str) -> WorkerProcess:
        """Start (or restart: same name and key, so it re-registers as the same worker) `name` on `url`."""
        log_path = self.tmp / f"{name}-{sum(w.name == name for w in self.started) + 1}.log"
        command = [
            *[*openhorde_command(), "worker", "--url", url, "--api-key", self.apikey, "--name", name],
            *["--model", TINY_MODEL_NAME, "--max-power", "1", "--device", "cpu", "--log-format", "json"],
            *["--threads", "1", "--queue-size", "0", "--model-store", str(self.tmp / "models")],
        ]
        env = dict(
            os.environ,
            OMP_NUM_THREADS="1",  # three workers share two cores with the servers
            OPENHORDE_WORKER_ERROR_BACKOFF_SECONDS="1",  # back soon after its server restarts
            OPENHORDE_WORKER_IDLE_POP_MIN_SECONDS="0.2",
            OPENHORDE_WORKER_IDLE_POP_MAX_SECONDS="0.6",
        )
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        worker = WorkerProcess(name, log_path, proc)
        self.urls[name] = url
        self.current[name] = worker
        self.started.append(worker)
        return worker

    def wait_online(self, timeout: float = WORKER_ONLINE_TIMEOUT_S) -> None:
        """Until every current worker has loaded its model and its server lists it online."""
        with httpx.Client(timeout=5, trust_env=False) as client:

            def online(name: str) -> bool:
                worker = self.current[name]
                if worker.proc.poll() is not None:
                    pytest.fail(f"worker {name} exited {worker.proc.returncode}:\n{worker.log_tail()}")
                if not self.has_started(name):
                    return False
                answer = client.get(f"{self.urls[name]}/api/v2/workers/name/{name}")
                return answer.status_code == 200 and bool(answer.json().get("online"))

            if not wait_for(lambda: all(online(name) for name in self.current), timeout, interval=0.5):
                tails = "\n".join(f"--- {name}\n{worker.log_tail()}" for name, worker in self.current.items())
                pytest.fail(f"the workers did not all come online:\n{tails}")

    def has_started(self, name: str) -> bool:
        """Whether the current `name` process has loaded its model and begun to pop."""
        return any(entry.get("event") == "started" for entry in log_entries(self.current[name].log_path))

    def held_jobs(self, name: str) -> set[str]:
        """Ids of the jobs the database shows worker `name` holding (state 'processing')."""
        rows = pg_fetch(
            self.database,
            "SELECT j.id FROM jobs j JOIN workers w ON w.id = j.worker_id WHERE w.name = $1 AND j.state = 'processing'",
            name,
        )
        return {row["id"] for row in rows}

    def kill_mid_job(self, name: str) -> set[str]:
        """SIGKILL `name` once it is online and holds a job, start its replacement; the jobs it held when it died.

        It is stopped first (`stop_holding`) and killed only once it is seen holding a job while stopped: a job
        of a few tenths of a second was often handed in between seeing it held and the kill."""
        wait_for(lambda: self.has_started(name), WORKER_ONLINE_TIMEOUT_S, interval=0.5)
        held = self.stop_holding(name)
        worker = self.current[name]
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=10)
        self.start(name, self.urls[name])
        return held & self.held_jobs(name)

    def stop_holding(self, name: str) -> set[str]:
        """SIGSTOP `name` while it holds a job; the jobs it still holds a second later (empty: not caught)."""
        process = self.current[name].proc
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while time.monotonic() < deadline:
            if not wait_for(lambda: bool(self.held_jobs(name)), deadline - time.monotonic(), interval=0.1):
                break
            process.send_signal(signal.SIGSTOP)
            time.sleep(1.0)  # calls already sent finish on the server; then nothing moves the held jobs
            held = self.held_jobs(name)
            if held:
                return held
            process.send_signal(signal.SIGCONT)
        return set()

    def entries(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log entries of every process started (under `name`, when given)."""
        return [entry for w in self.started if name in (None, w.name) for entry in log_entries(w.log_path)]

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGKILL)  # also ends a stopped one
                worker.proc.wait(timeout=10)


@dataclass
class Clients:
    """Threads queueing one- and two-image requests on the servers alternately, retrying through faults,
    while fewer than `MAX_WAITING` images wait for a worker."""

    urls: list[str]
    apikeys: list[str]
    database: str
    accepted: dict[str, int] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, index: int) -> None:
        apikey = self.apikeys[index]
        with httpx.Client(timeout=15, trust_env=False) as client:
            turn = index
            while not self.stop.is_set():
                if self.waiting() >= MAX_WAITING:
                    self.stop.wait(0.5)
                    continue
                turn += 1
                n = random.choice((1, 1, 2))
                try:
                    answer = client.post(
                        f"{self.urls[turn % 2]}/api/v2/generate/async",
                        headers={"apikey": apikey},
                        json={**REQUEST_BODY, "params": {**REQUEST_BODY["params"], "n": n}},
                    )
                except httpx.TransportError as error:
                    with self.lock:
                        self.refusals[f"transport {type(error).__name__}"] += 1
                    self.stop.wait(0.2)
                    continue
                with self.lock:
                    if answer.status_code == 202:
                        self.accepted[answer.json()["id"]] = n
                    else:
                        self.refusals[f"{answer.status_code} {answer.json().get('rc') if answer.content else ''}"] += 1
                self.stop.wait(CLIENT_PAUSE_S if answer.status_code == 202 else 0.5)

    def waiting(self) -> int:
        """Images no worker has popped yet, from the database (as full when it cannot tell: a fault is on)."""
        try:
            [row] = pg_fetch(self.database, "SELECT coalesce(sum(n_waiting), 0) FROM requests WHERE state = 'queued'")
        # InternalClientError: a backend terminated by the test itself in the middle of this query.
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
            return MAX_WAITING
        return int(row[0])


def register(client: httpx.Client, url: str, name: str) -> str:
    answer = client.post(f"{url}/api/v2/register", json={"username": name})
    assert answer.status_code == 201, answer.text
    apikey: str = answer.json()["apikey"]
    return apikey


def late_submit_verdicts(workers: TinyWorkers, name: str, jobs: set[str]) -> dict[str, str]:
    """What the resumed worker logged for each stalled job's submit: the event and message, once it has."""
    verdicts: dict[str, str] = {}

    def all_tried() -> bool:
        for entry in workers.entries(name):
            if entry.get("job_id") in jobs and entry.get("event") in ("job_gone", "submit_failed"):
                verdicts[entry["job_id"]] = f"{entry['event']}: {entry.get('message')}"
        return set(verdicts) == jobs

    wait_for(all_tried, VERDICT_TIMEOUT_S)
    return verdicts


def accepted_submits(workers: TinyWorkers) -> list[str]:
    """Job ids the workers handed in and the horde accepted (one image per job: max_batch 1)."""
    entries = workers.entries()
    dropped = {e["job_id"] for e in entries if e.get("event") in ("job_gone", "submit_failed")}
    return [str(e["job_id"]) for e in entries if e.get("event") == "job_submitted" and e["job_id"] not in dropped]


@pytest.fixture
def cluster(fresh_postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, fresh_postgres_database)
    try:
        cluster.start(0)  # migrates and creates the shared secret; the test starts the second meanwhile
        yield cluster
    finally:
        for server in cluster.servers:
            server.stop()


def test_chaos(cluster: Cluster, tmp_path: Path) -> None:
    database = cluster.database_url.rsplit("/", 1)[1]
    counts: Counter[str] = Counter()
    with httpx.Client(timeout=15, trust_env=False) as client:
        owner = register(client, cluster.urls[0], "chaos-owner")
        requesters = [register(client, cluster.urls[0], f"chaos-asker-{i}") for i in range(CLIENTS)]
    workers = TinyWorkers(tmp_path, database, owner)
    clients = Clients(cluster.urls, requesters, database)
    threads = [threading.Thread(target=clients.run, args=(i,), daemon=True) for i in range(CLIENTS)]
    begun = time.monotonic()
    killed_jobs: set[str] = set()
    stalled_jobs: set[str] = set()
    verdicts: dict[str, str] = {}
    resumed_at = ""
    statuses: dict[str, dict[str, Any]] = {}
    try:
        for i, name in enumerate(("w0", "w1", "w2")):
            workers.start(name, cluster.urls[i % 2])  # w0 and w2 on server 0, w1 on server 1
        cluster.start(1)  # while the workers import torch (w1 retries its pops until it answers)
        workers.wait_online()
        counts["seconds until the workers were online"] = round(time.monotonic() - begun)
        for thread in threads:
            thread.start()
        started = time.monotonic()

        def at(seconds: float) -> None:
            time.sleep(max(0.0, started + seconds - time.monotonic()))

        def kill_and_replace(name: str) -> None:
            held = workers.kill_mid_job(name)
            counts["workers killed"] += 1
            counts["killed mid-job"] += bool(held)
            killed_jobs.update(held)

        # The stall comes first, while no other fault has touched the queue: its job's image is then re-queued
        # once only and another worker delivers it before the restarts and the later kills.
        at(1)
        stalled_jobs = workers.stop_holding("w2")
        stalled_at = time.monotonic()
        counts["stalls"] += 1
        at(3)
        kill_and_replace("w0")  # its replacement takes 15-90 s to import torch and load the model
        at(5)
        counts["backends terminated"] += pg_terminate(database)
        time.sleep(max(0.0, stalled_at + STALL_S - time.monotonic()))
        resumed_at = datetime.now(UTC).isoformat(timespec="milliseconds")  # as the JSON log writes times
        workers.current["w2"].proc.send_signal(signal.SIGCONT)
        verdicts = late_submit_verdicts(workers, "w2", stalled_jobs)  # before its server restarts
        at(22)
        cluster.restart(1)
        counts["server restarts"] += 1
        at(25)
        counts["backends terminated"] += pg_terminate(database)
        at(27)
        kill_and_replace("w1")
        at(29)
        cluster.restart(0)
        counts["server restarts"] += 1
        at(32)
        kill_and_replace("w0")  # the first replacement, once it is online and holds a job
        counts["backends terminated"] += pg_terminate(database)
        at(TRAFFIC_S)
        clients.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        counts["seconds of traffic"] = round(time.monotonic() - started)

        # Drain: every accepted request must end (done or faulted) within the bound.
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        with httpx.Client(timeout=15, trust_env=False) as client:
            pending = set(clients.accepted)
            while pending and time.monotonic() < deadline:
                for request_id in sorted(pending):
                    answer = client.get(f"{cluster.urls[0]}/api/v2/generate/status/{request_id}")
                    assert answer.status_code == 200, f"accepted request {request_id} lost: {answer.text}"
                    status = answer.json()
                    if status["done"] or status["faulted"]:
                        statuses[request_id] = status
                        pending.discard(request_id)
                time.sleep(0.5)
        counts["seconds to drain"] = round(time.monotonic() - deadline + DRAIN_TIMEOUT_S)
    finally:
        clients.stop.set()
        workers.stop_all()

    submitted = accepted_submits(workers)
    generations = [str(g["id"]) for s in statuses.values() for g in s["generations"]]
    job_states = dict(pg_fetch(database, "SELECT state, count(*) FROM jobs GROUP BY state"))
    entries = workers.entries()
    seconds = sorted(float(e["seconds"]) for e in entries if e.get("event") == "job_generated")
    resumed_work = [e for e in workers.entries("w2") if e.get("event") == "job_submitted" and e["time"] > resumed_at]
    resumed_work = [e for e in resumed_work if e["job_id"] in set(submitted)]  # accepted ones only
    counts.update(
        accepted=len(clients.accepted),
        done=sum(1 for s in statuses.values() if s["done"] and not s["faulted"]),
        faulted=sum(1 for s in statuses.values() if s["faulted"]),
        **{"images delivered": len(generations), "submits accepted": len(submitted)},
        **{"stalled jobs": len(stalled_jobs), "killed jobs": len(killed_jobs)},
        **{"late submits refused": sum("AbortedGen" in v for v in verdicts.values())},
        **{"jobs handed in by w2 after resuming": len(resumed_work)},
        **{f"jobs {state}": count for state, count in job_states.items()},
        **{"worker processes started": len(workers.started)},
        **{"worker generation errors": sum(1 for e in entries if e.get("event") == "generation_error")},
        **{f"client refusal {k}": v for k, v in clients.refusals.items()},
        **Counter(f"fault reason {s['fault_reason']}" for s in statuses.values() if s["faulted"]),
    )
    artifacts = REPO / "test-artifacts"
    shutil.rmtree(artifacts / "chaos-logs", ignore_errors=True)
    (artifacts / "chaos-logs").mkdir(parents=True, exist_ok=True)
    for log in [*tmp_path.glob("server*.log"), *(w.log_path for w in workers.started)]:
        shutil.copyfile(log, artifacts / "chaos-logs" / log.name)  # kept for reading after a failure
        if log.name.startswith("server"):
            counts["server tracebacks"] += log.read_text(errors="replace").count("Traceback")
    summary: dict[str, Any] = dict(counts)
    if seconds:
        summary["job seconds (median, max)"] = [seconds[len(seconds) // 2], seconds[-1]]
    (artifacts / "chaos-counts.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print("\nchaos counts:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(summary.items())))

    # Every accepted request ended, done or faulted with a reason.
    unfinished = set(clients.accepted) - set(statuses)
    assert not unfinished, f"{len(unfinished)} accepted requests never ended, e.g. {sorted(unfinished)[:3]}"
    for request_id, status in statuses.items():
        if status["faulted"]:
            assert status["fault_reason"], f"{request_id} faulted without a reason"
        else:
            assert len(status["generations"]) == clients.accepted[request_id]
        assert len(status["generations"]) <= clients.accepted[request_id]
    # None delivered twice: each image's job id appears once, no request has more done jobs than images,
    # no job was accepted twice, and every accepted submit was delivered.
    assert len(generations) == len(set(generations))
    overfull = pg_fetch(
        database,
        "SELECT r.id FROM requests r JOIN jobs j ON j.request_id = r.id AND j.state = 'done' "
        "GROUP BY r.id, r.n_total HAVING count(*) > r.n_total",
    )
    assert overfull == []
    assert len(submitted) == len(set(submitted))
    assert set(submitted) <= set(generations)
    assert counts["accepted"] > 0 and counts["done"] > 0
    assert counts["workers killed"] == 3 and counts["server restarts"] == 2 and counts["backends terminated"] > 0
    assert counts["killed mid-job"] == 3, f"killed mid-job {counts['killed mid-job']} of 3"
    # The jobs of killed and stalled workers expired, paid nothing, and other jobs delivered their images.
    assert stalled_jobs, "the stalled worker never held a job"
    for job_id in killed_jobs | stalled_jobs:
        assert_expired_unpaid_requeued(expired_job(database, job_id))
    for job_id in stalled_jobs:
        assert_delivered_by_another_job(expired_job(database, job_id))
    # The stalled worker's late submit was refused, and it carried on working.
    assert set(verdicts) == stalled_jobs, f"no late submit logged for {stalled_jobs - set(verdicts)}"
    assert all("AbortedGen" in verdict for verdict in verdicts.values()), verdicts
    assert resumed_work, "the stalled worker handed in nothing after it resumed"
    # The ledger balances.
    env = dict(os.environ, OPENHORDE_DATABASE_URL=cluster.database_url)
    ledger = subprocess.run(
        [*openhorde_command(), "admin", "check-ledger", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr


def expired_job(database: str, job_id: str) -> dict[str, Any]:
    """A job's state, the kudos transactions referencing it (rewards use the job id), its request's state,
    images, jobs and done jobs."""
    [row] = pg_fetch(
        database,
        "SELECT j.state, r.state AS request_state, r.n_total, "
        "(SELECT count(*) FROM kudos_transactions t WHERE t.reference = j.id) AS payments, "
        "(SELECT count(*) FROM jobs a WHERE a.request_id = r.id) AS jobs, "
        "(SELECT count(*) FROM jobs d WHERE d.request_id = r.id AND d.state = 'done') AS done "
        "FROM jobs j JOIN requests r ON r.id = j.request_id WHERE j.id = $1",
        job_id,
    )
    return {"job": job_id, **dict(row)}


def assert_expired_unpaid_requeued(job: dict[str, Any]) -> None:
    """The job expired unpaid and its image went back to the queue: the request got a job more than it has images
    (or it faulted first, after repeated expiries; the status checks say it has a reason)."""
    assert job["state"] == "expired" and job["payments"] == 0, job
    assert job["jobs"] > job["n_total"] or job["request_state"] == "faulted", job


def assert_delivered_by_another_job(job: dict[str, Any]) -> None:
    """The job's request is done with all its images, none of them by this (expired) job."""
    assert job["request_state"] == "done" and job["done"] == job["n_total"], job
