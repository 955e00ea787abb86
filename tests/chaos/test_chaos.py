"""Chaos suite: two `openhorde serve` processes on one PostgreSQL, scripted workers and a stream of clients,
while workers are SIGKILLed mid-job, a server restarts, PostgreSQL's connections are terminated and a worker
stalls past its lease. Afterwards every accepted request has ended (done, or faulted with a reason), none is
lost, none delivered twice, the late submit was refused and unpaid, and the ledger balances.

Bounded: about a minute of traffic and faults, at most `DRAIN_TIMEOUT_S` to finish the queue; loopback only.
The counts are printed (`pytest -s`) and written to test-artifacts/chaos-counts.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.e2e.conftest import LiveServer, free_port, openhorde_command, wait_until_up

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 6
STALL_S = LEASE_S + 5  # past the lease and at least one maintenance pass
WORKERS = 4
CLIENTS = 3
TRAFFIC_S = 32.0
DRAIN_TIMEOUT_S = 75.0
REQUEST_BODY = {"prompt": "chaos", "params": {"width": 64, "height": 64, "steps": 3}, "r2": True}


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


@dataclass
class Workers:
    """Scripted worker processes (tests/chaos/scripted_worker.py) and their event files."""

    tmp: Path
    servers: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def events_path(self, name: str) -> Path:
        return self.tmp / f"{name}.events"

    def start(self, name: str, apikey: str, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tests.chaos.scripted_worker", "--servers", self.servers, "--apikey", apikey]
        cmd += ["--name", name, "--events", str(self.events_path(name)), *extra]
        with open(self.tmp / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.procs[name] = proc
        return proc

    def events(self, name: str | None = None) -> list[dict[str, object]]:
        names = [name] if name else list(self.procs)
        found: list[dict[str, object]] = []
        for each in names:
            path = self.events_path(each)
            if path.exists():
                found += [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
        return found

    def kill_mid_job(self, name: str, timeout: float = 8.0) -> bool:
        """SIGKILL the worker right after it popped a job (before it submits); True when caught mid-job."""
        deadline = time.monotonic() + timeout
        mid_job = False
        while time.monotonic() < deadline:
            last = self.events(name)[-1:] or [{}]
            if last[0].get("e") == "popped":
                mid_job = True
                break
            time.sleep(0.02)
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)
        return mid_job

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)


@dataclass
class Clients:
    """Threads queueing one- and two-image requests on the servers alternately, retrying through faults."""

    urls: list[str]
    apikeys: list[str]
    accepted: dict[str, int] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, index: int) -> None:
        apikey = self.apikeys[index]
        with httpx.Client(timeout=15, trust_env=False) as client:
            turn = index
            while not self.stop.is_set():
                turn += 1
                n = random.choice((1, 1, 2))
                try:
                    answer = client.post(
                        f"{self.urls[turn % 2]}/api/v2/generate/async",
                        headers={"apikey": apikey},
                        json={**REQUEST_BODY, "params": {**REQUEST_BODY["params"], "n": n}},  # type: ignore[dict-item]
                    )
                except httpx.TransportError as error:
                    with self.lock:
                        self.refusals[f"transport {type(error).__name__}"] += 1
                    time.sleep(0.2)
                    continue
                with self.lock:
                    if answer.status_code == 202:
                        self.accepted[answer.json()["id"]] = n
                    else:
                        self.refusals[f"{answer.status_code} {answer.json().get('rc') if answer.content else ''}"] += 1
                time.sleep(0.25 if answer.status_code == 202 else 0.5)


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


def register(client: httpx.Client, url: str, name: str) -> str:
    answer = client.post(f"{url}/api/v2/register", json={"username": name})
    assert answer.status_code == 201, answer.text
    apikey: str = answer.json()["apikey"]
    return apikey


@pytest.fixture
def cluster(fresh_postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, fresh_postgres_database)
    try:
        cluster.start(0)  # the first start migrates and creates the shared secret; then the second
        cluster.start(1)
        yield cluster
    finally:
        for server in cluster.servers:
            server.stop()


def test_chaos(cluster: Cluster, tmp_path: Path) -> None:
    database = cluster.database_url.rsplit("/", 1)[1]
    counts: Counter[str] = Counter()
    workers = Workers(tmp_path, ",".join(cluster.urls))
    with httpx.Client(timeout=15, trust_env=False) as client:
        owner = register(client, cluster.urls[0], "chaos-owner")
        staller = register(client, cluster.urls[1], "chaos-staller")
        requesters = [register(client, cluster.urls[i % 2], f"chaos-asker-{i}") for i in range(CLIENTS)]
    clients = Clients(cluster.urls, requesters)
    threads = [threading.Thread(target=clients.run, args=(i,), daemon=True) for i in range(CLIENTS)]
    try:
        for i in range(WORKERS):
            workers.start(f"w{i}", owner)
        for thread in threads:
            thread.start()
        started = time.monotonic()

        def at(seconds: float) -> None:
            time.sleep(max(0.0, started + seconds - time.monotonic()))

        def kill_and_replace(name: str) -> None:
            counts["workers killed"] += 1
            counts["killed mid-job"] += workers.kill_mid_job(name)
            workers.start(f"{name}-r", owner)

        at(4)
        kill_and_replace("w0")
        at(6)
        stall = workers.start("stall", staller, "--stall", str(STALL_S))
        counts["stalls"] += 1
        at(9)
        counts["backends terminated"] += pg_terminate(database)
        at(12)
        cluster.restart(1)
        counts["server restarts"] += 1
        at(17)
        kill_and_replace("w1")
        at(20)
        counts["backends terminated"] += pg_terminate(database)
        at(23)
        cluster.restart(0)
        counts["server restarts"] += 1
        at(26)
        kill_and_replace("w2")
        counts["backends terminated"] += pg_terminate(database)
        at(TRAFFIC_S)
        clients.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        stall.wait(timeout=STALL_S + 60)

        # Drain: every accepted request must end (done or faulted) within the bound.
        statuses: dict[str, dict[str, object]] = {}
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
    finally:
        clients.stop.set()
        workers.stop_all()

    events = workers.events()
    submitted = [str(e["job"]) for e in events if e["e"] == "submitted"]
    refused = [e for e in events if e["e"] == "refused"]
    stall_events = workers.events("stall")
    generations = [str(g["id"]) for s in statuses.values() for g in s["generations"]]  # type: ignore[attr-defined]
    counts.update(
        accepted=len(clients.accepted),
        done=sum(1 for s in statuses.values() if s["done"]),
        faulted=sum(1 for s in statuses.values() if s["faulted"]),
        **{"images delivered": len(generations), "submits accepted": len(submitted)},
        **{"late submits refused": sum(1 for e in stall_events if e["e"] == "refused")},
        **{"other submits refused": len(refused) - sum(1 for e in stall_events if e["e"] == "refused")},
        **{f"client refusal {k}": v for k, v in clients.refusals.items()},
    )
    artifacts = REPO / "test-artifacts"
    (artifacts / "chaos-logs").mkdir(parents=True, exist_ok=True)
    for log in tmp_path.glob("server*.log"):  # kept for reading after a failure (pytest's tmp dirs rotate)
        shutil.copyfile(log, artifacts / "chaos-logs" / log.name)
        counts["server tracebacks"] += log.read_text(errors="replace").count("Traceback")
    (artifacts / "chaos-counts.json").write_text(json.dumps(dict(counts), indent=2, sort_keys=True) + "\n")
    print("\nchaos counts:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(counts.items())))

    # Every accepted request ended, done or faulted with a reason.
    unfinished = set(clients.accepted) - set(statuses)
    assert not unfinished, f"{len(unfinished)} accepted requests never ended, e.g. {sorted(unfinished)[:3]}"
    for request_id, status in statuses.items():
        if status["faulted"]:
            assert status["fault_reason"], f"{request_id} faulted without a reason"
        else:
            assert len(status["generations"]) == clients.accepted[request_id]  # type: ignore[arg-type]
        assert len(status["generations"]) <= clients.accepted[request_id]  # type: ignore[arg-type]
    # None delivered twice: each image's job id appears once, and every accepted submit was delivered.
    assert len(generations) == len(set(generations))
    assert len(submitted) == len(set(submitted))
    assert set(submitted) <= set(generations)
    assert counts["accepted"] > 0 and counts["done"] > 0
    assert counts["workers killed"] == 3 and counts["server restarts"] == 2 and counts["backends terminated"] > 0
    # The stalled worker's late submit was refused and paid nothing.
    assert [e["e"] for e in stall_events] == ["popped", "refused"], stall_events
    assert stall_events[1]["rc"] == "AbortedGen"
    paid = pg_fetch(database, "SELECT id FROM kudos_transactions WHERE reference = $1", stall_events[0]["job"])
    assert paid == []
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
