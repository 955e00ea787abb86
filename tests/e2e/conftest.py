"""Helpers for end-to-end tests that run a real `openhorde serve` subprocess.

Fixtures:
* `db_backend`: "sqlite" (data dir only) or "postgres" (a fresh database per test on 127.0.0.1:5432, user
  postgres, trust auth; dropped afterwards; `scripts/services.sh` starts the server), as the test's markers
  choose (see tests/conftest.py: SQLite by default, `both_databases` or `postgres` for more).
* `live_server`: a factory; `live_server()` starts a server on a free port with the current backend and
  returns a `LiveServer` (`.url` = http://127.0.0.1:PORT, `.api_url` = .../api/, `.log_path`,
  `.log_tail()`). Every server it started is terminated at teardown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import admin_execute, postgres_url

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openhorde_command() -> list[str]:
    """`openhorde` next to the running interpreter, else `python -m openhorde`."""
    exe = Path(sys.executable).parent / "openhorde"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "openhorde"]


@dataclass
class WorkerProcess:
    """An `openhorde worker` subprocess and its log file."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "<no log>"

    def stop(self) -> None:
        """Ctrl-C (finish the job in hand, then exit), killed if it takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class LiveServer:
    url: str
    api_url: str
    backend: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no server log>"
        return text[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def wait_until_up(server: LiveServer, timeout: float = STARTUP_TIMEOUT_S) -> None:
    url = server.api_url + "v2/status/heartbeat"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"openhorde exited with {server.proc.returncode} before answering {url}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = repr(e)
        time.sleep(0.25)
    server.stop()
    pytest.fail(f"{url} did not return 200 within {timeout:.0f}s (last: {last}):\n{server.log_tail()}")


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy asyncpg URL, drop it afterwards."""
    name = f"openhorde_e2e_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url(name)
    finally:
        asyncio.run(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(backend name, OPENHORDE_DATABASE_URL or None for the data-dir default).

    Parametrised by ``tests/conftest.py``'s ``pytest_generate_tests``: SQLite unless the test is marked
    ``both_databases`` or ``postgres``."""
    if request.param == "postgres":
        return "postgres", request.getfixturevalue("fresh_postgres_database")
    return "sqlite", None


@pytest.fixture
def live_server(db_backend: tuple[str, str | None], tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> LiveServer:
        backend, database_url = db_backend
        port = free_port()
        data_dir = tmp_path / f"server{len(started)}-data"
        data_dir.mkdir()
        env = dict(os.environ)
        env.pop("OPENHORDE_DATABASE_URL", None)
        if database_url:
            env["OPENHORDE_DATABASE_URL"] = database_url
        env["OPENHORDE_RATE_LIMITS"] = "off"  # tests call quickly from one address; extra_env may turn them on
        env.update(extra_env or {})
        log_path = tmp_path / f"server{len(started)}.log"
        cmd = [
            *openhorde_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *(extra_args or []),
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        url = f"http://127.0.0.1:{port}"
        server = LiveServer(url, url + "/api/", backend, data_dir, log_path, proc)
        started.append(server)
        wait_until_up(server)
        return server

    yield start
    for server in started:
        server.stop()
