"""Start ``openhorde serve`` for a benchmark, and stop it and clean up after.

One launcher for every benchmark: a free loopback port, a temporary data directory, SQLite (the server's
default inside that directory) or a scratch PostgreSQL database created and dropped through asyncpg,
``--workers N`` server processes, the environment a load test needs (rate limits off, warnings only) and
the server's log kept in the temporary directory, printed when it holds errors.

Typical use::

    async with launch("postgres", ServerOptions(processes=2)) as server:
        ...  # server.url, server.pid (the process tree CPU is read from), server.database

``scratch_database`` and ``running_server`` are the two halves, for a benchmark that runs several servers
one after the other on one database and data directory (``scale.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.client import HttpClient, TransportError, is_loopback
from harness.tasks import MAX_LOOP_ITERATIONS

DbKind = Literal["sqlite", "postgres"]
DB_KINDS: tuple[DbKind, ...] = ("sqlite", "postgres")
PG_SERVER = "postgres@127.0.0.1:5432"  # trust auth, as on the project's development machines
PG_ADMIN_DATABASE = "postgres"
HEARTBEAT_PATH = "/api/v2/status/heartbeat"
READY_POLL_S = 0.2
READY_CALL_S = 2.0
STOP_SIGNALS = ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))  # (signal, seconds to wait for the exit)
LOG_TAIL_LINES = 40
REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_ENV = {
    "OPENHORDE_RATE_LIMITS": "off",  # a load test is the abuse the limits exist to stop
    "OPENHORDE_LOG_LEVEL": "warning",  # an access log line per call would cost the server CPU we measure
}


# --------------------------------------------------------------------------
# PostgreSQL


def asyncpg_module() -> Any:
    """asyncpg, imported lazily: SQLite runs need no PostgreSQL driver."""
    return importlib.import_module("asyncpg")


def pg_dsn(database: str) -> str:
    """An asyncpg DSN for one database of the benchmark's PostgreSQL."""
    return f"postgresql://{PG_SERVER}/{database}"


async def pg_execute(database: str, statement: str, *args: Any) -> None:
    """Run one statement on one database."""
    conn = await asyncpg_module().connect(pg_dsn(database), timeout=10)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def pg_fetchval(database: str, query: str, *args: Any) -> Any:
    """The first value of one query's first row."""
    conn = await asyncpg_module().connect(pg_dsn(database), timeout=10)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


@dataclass(frozen=True)
class ScratchDatabase:
    """A PostgreSQL database that exists for one benchmark run."""

    name: str

    @property
    def server_url(self) -> str:
        """``OPENHORDE_DATABASE_URL`` for the server."""
        return f"postgresql+asyncpg://{PG_SERVER}/{self.name}"

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first value of one query's first row, straight from the database (no server involved)."""
        return await pg_fetchval(self.name, query, *args)

    async def execute(self, statement: str, *args: Any) -> None:
        """Run one statement in the database."""
        await pg_execute(self.name, statement, *args)


@contextlib.asynccontextmanager
async def scratch_database(prefix: str = "bench") -> AsyncIterator[ScratchDatabase]:
    """A fresh database ``<prefix>_<random>``, dropped (connections and all) at the end."""
    database = ScratchDatabase(f"{prefix}_{secrets.token_hex(6)}")
    await pg_execute(PG_ADMIN_DATABASE, f'CREATE DATABASE "{database.name}"')
    try:
        yield database
    finally:
        await pg_execute(PG_ADMIN_DATABASE, f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def database_for(kind: DbKind, prefix: str = "bench") -> AsyncIterator[ScratchDatabase | None]:
    """A scratch PostgreSQL database, or None for SQLite (the server's default file in its data dir)."""
    if kind == "sqlite":
        yield None
        return
    async with scratch_database(prefix) as database:
        yield database


# --------------------------------------------------------------------------
# the server process


@dataclass(frozen=True)
class ServerOptions:
    """How to run ``openhorde serve``."""

    processes: int = 1  # ``serve --workers N``: N uvicorn processes sharing the port
    env: Mapping[str, str] = field(default_factory=dict)  # on top of BASE_ENV
    startup_timeout: float = 60.0
    log_copy: Path | None = None  # keep a copy of the server's log here


@dataclass(frozen=True)
class Server:
    """A server to measure: where it listens, the pid whose process tree is its CPU, what it runs on."""

    url: str
    pid: int | None
    db: DbKind
    processes: int = 1
    data_dir: Path | None = None
    database: ScratchDatabase | None = None
    env: Mapping[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def openhorde_command() -> tuple[list[str], dict[str, str]]:
    """How to run the ``openhorde`` CLI, and the environment that needs.

    The console script next to the running interpreter when the project is installed (the venv); else the
    module from the source tree (the GPU machines run from a copied checkout with nothing installed)."""
    exe = Path(sys.executable).parent / "openhorde"
    if exe.exists():
        return [str(exe)], {}
    path = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "openhorde"], {"PYTHONPATH": path}


def server_env(database_url: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    """Environment for the server: ours, minus any database the caller's shell points at."""
    env = dict(os.environ)
    env.pop("OPENHORDE_DATABASE_URL", None)
    if database_url is not None:
        env["OPENHORDE_DATABASE_URL"] = database_url
    return {**env, **BASE_ENV, **extra}


def start_server(
    port: int, data_dir: Path, env: Mapping[str, str], log_path: Path, processes: int = 1
) -> subprocess.Popen[bytes]:
    """Launch ``openhorde serve`` in its own process group (so that stopping it stops its children)."""
    command, command_env = openhorde_command()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    if processes != 1:
        args += ["--workers", str(processes)]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [*command, *args],
            env={**env, **command_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


async def heartbeat_ok(http: HttpClient) -> bool:
    """True when the server answers its heartbeat with 200."""
    with contextlib.suppress(TransportError, TimeoutError):
        async with asyncio.timeout(READY_CALL_S):
            status, _ = await http.request("GET", HEARTBEAT_PATH)
            return status == 200
    return False


async def wait_ready(url: str, wait_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    """Wait until the heartbeat answers 200; fail early if the server process died."""
    deadline = time.monotonic() + wait_s
    http = HttpClient(url, 1)
    try:
        for _ in range(MAX_LOOP_ITERATIONS):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited early with code {proc.returncode}")
            if await heartbeat_ok(http):
                return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(READY_POLL_S)
    finally:
        await http.aclose()
    raise RuntimeError(f"server at {url} not ready after {wait_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        print(f"!! server had exited with code {proc.returncode}", file=sys.stderr)
        return
    for sig, wait_s in STOP_SIGNALS:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
            return


def report_log(log_path: Path, copy_to: Path | None) -> None:
    """Copy the server log if asked; show its tail if it has tracebacks or errors."""
    if not log_path.exists():
        return
    if copy_to is not None:
        shutil.copyfile(log_path, copy_to)
    lines = log_path.read_text(errors="replace").splitlines()
    bad = sum(1 for ln in lines if "Traceback" in ln or " ERROR" in ln)
    if bad:
        print(f"\n!! server log has {bad} error line(s); last {LOG_TAIL_LINES} lines:", file=sys.stderr)
        for line in lines[-LOG_TAIL_LINES:]:
            print(f"   | {line}", file=sys.stderr)


@contextlib.asynccontextmanager
async def running_server(
    workdir: Path, database: ScratchDatabase | None, options: ServerOptions, name: str = "server"
) -> AsyncIterator[Server]:
    """``openhorde serve`` on ``workdir/data`` until the block ends; its log is ``workdir/<name>.log``.

    Several servers may run one after another on the same workdir and database (same secret, same
    uploaded files): that is how ``scale.py`` compares 1 and 2 processes on one queue."""
    data_dir = workdir / "data"
    log_path = workdir / f"{name}.log"
    env = server_env(database.server_url if database else None, options.env)
    port = free_port()
    proc = start_server(port, data_dir, env, log_path, options.processes)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, options.startup_timeout, proc)
        kind: DbKind = "postgres" if database else "sqlite"
        yield Server(url, proc.pid, kind, options.processes, data_dir, database, env)
    finally:
        stop_server(proc)
        report_log(log_path, options.log_copy)


@contextlib.asynccontextmanager
async def temporary_workdir(prefix: str = "openhorde-bench-") -> AsyncIterator[Path]:
    """A temporary directory for the server's data and logs, removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def launch(db: DbKind, options: ServerOptions | None = None) -> AsyncIterator[Server]:
    """A private server on a fresh data directory and database, gone after the block."""
    async with (
        temporary_workdir() as workdir,
        database_for(db) as database,
        running_server(workdir, database, options or ServerOptions()) as server,
    ):
        yield server


@contextlib.asynccontextmanager
async def attach(url: str, pid: int | None, db: DbKind, startup_timeout: float = 60.0) -> AsyncIterator[Server]:
    """A server someone else started (``--url``): waited for, never stopped. CPU needs its pid."""
    if not is_loopback(url):
        raise ValueError("the benchmarks only talk to loopback servers")
    await wait_ready(url, startup_timeout, None)
    yield Server(url.rstrip("/"), pid, db)


def run_cli(server: Server, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run another ``openhorde`` command (``admin …``) on a launched server's data directory."""
    if server.data_dir is None:
        raise ValueError("only a launched server has a data directory")
    command, command_env = openhorde_command()
    return subprocess.run(
        [*command, *args, "--data-dir", str(server.data_dir)],
        check=True,
        env={**server.env, **command_env},
        capture_output=True,
    )
