"""What the tests of published AI Horde client libraries share (test_aihordeclient.py, test_horde_client.py).

Each library runs unmodified in its own venv (`scripts/setup_client_venvs.sh`, run here when the venv is
missing), driven by a script of ours run with that venv's interpreter; the driver prints one line
``RESULT {json}`` with what the library returned. The tests start one server and one `openhorde-tiny` worker per
module (`ClientHorde`), on SQLite: what is tested is the wire, not the database.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import torch_threads
from tests.e2e.conftest import LiveServer, WorkerProcess, free_port, openhorde_command, wait_until_up

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup_client_venvs.sh"
MODEL = "openhorde-tiny"
WORKER_ONLINE_TIMEOUT_S = 180.0
SETUP_TIMEOUT_S = 900
RESULT_PREFIX = "RESULT "
# Variables of ours or of the libraries that must not leak into a driver from the test's environment.
DRIVER_ENV_DROP = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR"}


def client_python(venv: str) -> Path:
    """The interpreter of ``<repo>/<venv>``, made by the set-up script when it is missing (skips if it fails)."""
    python = REPO / venv / "bin" / "python"
    if python.exists():
        return python
    # pytest-xdist runs each client's module in its own process: one set-up at a time, the second finds it done.
    with open(REPO / ".setup_client_venvs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists():
            return python
        try:
            done = subprocess.run(
                ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, cwd=REPO
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"{venv} is missing and {SETUP_SCRIPT.name} could not run: {e}")
    if done.returncode != 0 or not python.exists():
        pytest.skip(
            f"{venv} is missing and {SETUP_SCRIPT.name} failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return python


@dataclass
class Account:
    id: int
    username: str
    apikey: str


@dataclass
class ClientHorde:
    """A live `openhorde serve`, its accounts and worker processes; `api` talks to it directly (httpx)."""

    server: LiveServer
    folder: Path
    api: httpx.Client
    worker_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    def register(self, username: str) -> Account:
        answer = self.api.post("/register", json={"username": username})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return Account(body["id"], body["username"], body["apikey"])

    def set_role(self, account: Account, role: str) -> None:
        """`openhorde admin set-role`, on the server's own data directory."""
        command = [*openhorde_command(), "admin", "set-role", str(account.id), role]
        done = subprocess.run(
            [*command, "--data-dir", str(self.server.data_dir)], capture_output=True, cwd=self.folder, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def start_worker(self, name: str, account: Account, horde_url: str, *flags: str) -> WorkerProcess:
        """An `openhorde worker` serving the built-in tiny model on the CPU, waited for until it has popped."""
        log_path = self.folder / f"{name}.log"
        command = [
            *[*openhorde_command(), "worker", "--url", horde_url, "--api-key", account.apikey, "--name", name],
            *["--model", MODEL, "--device", "cpu", "--model-store", str(self.folder / "models"), *flags],
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(torch_threads()), **self.worker_env)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        worker = WorkerProcess(name, log_path, proc)
        self.workers.append(worker)
        deadline = time.monotonic() + WORKER_ONLINE_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"worker {name} exited {proc.returncode}:\n{worker.log_tail()}")
            if any(w["name"] == name for w in self.api.get("/workers").json()):
                return worker
            time.sleep(0.5)
        pytest.fail(f"worker {name} did not come online:\n{worker.log_tail()}")

    def run_driver(
        self, python: Path, driver: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
    ) -> dict[str, Any]:
        """Run ``driver`` with the library's interpreter; its ``RESULT`` line, or a failure with every log."""
        driver_env = {k: v for k, v in os.environ.items() if k not in DRIVER_ENV_DROP}
        driver_env.update({"PYTHONUNBUFFERED": "1", "TMPDIR": str(self.folder), **(env or {})})
        try:
            done = subprocess.run(
                [str(python), str(driver), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=driver_env,
                cwd=self.folder,
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{driver.name} ran past {timeout:.0f}s\n{self.report(str(e.stderr or ''))}")
        result = next(
            (
                json.loads(line.removeprefix(RESULT_PREFIX))
                for line in reversed(done.stdout.splitlines())
                if line.startswith(RESULT_PREFIX)
            ),
            None,
        )
        if done.returncode != 0 or result is None:
            pytest.fail(f"{driver.name} {' '.join(args[1:])} exited {done.returncode}\n{self.report(done.stderr)}")
        assert isinstance(result, dict)
        return result

    def report(self, driver_stderr: str) -> str:
        logs = "".join(f"\n--- worker {w.name} ---\n{w.log_tail()}" for w in self.workers)
        return f"--- driver stderr ---\n{driver_stderr[-8000:]}\n--- server log ---\n{self.server.log_tail()}{logs}"

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.api.close()
        self.server.stop()


def start_horde(folder: Path, port: int | None = None, **env: str) -> ClientHorde:
    """`openhorde serve` on SQLite in ``folder`` (``port``: a port chosen beforehand; ``env``: more settings)."""
    port = port or free_port()
    data_dir = folder / "data"
    data_dir.mkdir()
    server_env = {k: v for k, v in os.environ.items() if k != "OPENHORDE_DATABASE_URL"}
    server_env.update({"OPENHORDE_RATE_LIMITS": "off", **env})
    log_path = folder / "server.log"
    command = [*openhorde_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=server_env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, url + "/api/", "sqlite", data_dir, log_path, proc)
    wait_until_up(server)
    return ClientHorde(server, folder, httpx.Client(base_url=url + "/api/v2", timeout=30))
