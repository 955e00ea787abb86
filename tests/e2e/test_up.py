"""`openhorde up`: one command runs a private horde (server + local worker) and keeps it across restarts.

The first test runs the real command twice on one data directory (each start imports torch in the worker,
so this is the slow one); the others call `up`'s steps in process or stop before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image
from tests.e2e.conftest import free_port, openhorde_command
from tests.file_server import reference_json, reference_record

from openhorde.api.app import prepare_storage
from openhorde.cli import up
from openhorde.cli.processes import UpError
from openhorde.config import Settings
from openhorde.domain import accounts, catalogue, workers

pytestmark = pytest.mark.e2e

UP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
DONE_TIMEOUT_S = 120.0
SMALL = {"width": 64, "height": 64, "steps": 3, "sampler_name": "k_euler"}


@dataclass
class Banner:
    url: str
    api_key: str
    worker: str


@dataclass
class UpProcess:
    proc: subprocess.Popen[bytes]
    out_path: Path
    seen: set[int] = field(default_factory=set)

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def wait_until_up(self) -> Banner:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while "Press Ctrl-C to stop" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`openhorde up` not up (exit {self.proc.poll()}):\n{self.output()}")
            time.sleep(0.2)
        text = self.output()
        found = {
            name: re.search(rf"^\s+{label}:\s+(\S+)", text, re.MULTILINE)
            for name, label in [("url", "web UI"), ("api_key", "admin API key"), ("worker", "worker")]
        }
        assert all(found.values()), text
        return Banner(**{name: match.group(1) for name, match in found.items() if match is not None})

    def children(self) -> list[int]:
        """The pids of the processes `up` started (Linux: /proc/PID/task/*/children); remembered for clean-up."""
        tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
        found = [int(pid) for task in tasks for pid in (task / "children").read_text().split()]
        self.seen.update(found)
        return found

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., UpProcess]]:
    started: list[UpProcess] = []
    # The developer's own OPENHORDE_* settings (a PostgreSQL URL, a worker key…) must not leak into the run.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENHORDE_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="200")

    def start(*args: str) -> UpProcess:
        out_path = tmp_path / f"up{len(started)}.out"
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                [*openhorde_command(), "up", *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
            )
        process = UpProcess(proc, out_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.children()
            process.proc.kill()
            process.proc.wait(timeout=10)
        for pid in process.seen:
            with contextlib.suppress(OSError):  # only our own leftovers, never a process that reused the pid
                if _alive(pid) and b"openhorde" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _generate_and_download(client: httpx.Client, api_key: str) -> Image.Image:
    body = {"prompt": "a lighthouse", "params": SMALL, "models": ["openhorde-tiny"]}
    answer = client.post("/generate/async", headers={"apikey": api_key}, json=body)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["id"]
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while not (check := client.get(f"/generate/check/{request_id}").json())["done"]:
        assert not check.get("faulted") and time.monotonic() < deadline, check
        time.sleep(0.2)
    status = client.get(f"/generate/status/{request_id}").json()
    [generation] = status["generations"]
    return Image.open(io.BytesIO(httpx.get(generation["img"], timeout=30).content))


def test_up_runs_a_private_horde_that_survives_a_restart(start_up: Callable[..., UpProcess], tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "horde-data"
    first = start_up("--port", str(port), "--data-dir", str(data_dir))
    banner = first.wait_until_up()
    assert banner.url == f"http://127.0.0.1:{port}/"
    assert (data_dir / "local-admin.key").read_text().strip() == banner.api_key
    assert (data_dir / "local-admin.key").stat().st_mode & 0o777 == 0o600
    children = first.children()
    assert len(children) == 2 and all(_alive(pid) for pid in children)

    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=30) as client:
        assert client.get("/status/heartbeat").status_code == 200
        worker = client.get(f"/workers/name/{banner.worker}").json()
        assert worker["online"] and worker["models"] == ["openhorde-tiny"]
        image = _generate_and_download(client, banner.api_key)
        assert image.size == (64, 64)
        admin = client.get("/find_user", headers={"apikey": banner.api_key}).json()
        worker = client.get(f"/workers/name/{banner.worker}").json()
    assert worker["kudos_rewards"] > 0

    assert first.interrupt() == 0
    assert "OpenHorde stopped." in first.output()
    assert not any(_alive(pid) for pid in children), first.output()
    assert _port_closed(port)

    second = start_up("--port", str(port), "--data-dir", str(data_dir))
    again = second.wait_until_up()
    assert again.api_key == banner.api_key and again.worker == banner.worker
    assert "Created the local admin" not in second.output()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=30) as client:
        same_admin = client.get("/find_user", headers={"apikey": again.api_key}).json()
        same_worker = client.get(f"/workers/name/{again.worker}").json()
    assert (same_admin["id"], same_admin["username"], same_admin["kudos"]) == (
        admin["id"],
        admin["username"],
        admin["kudos"],
    )
    assert (same_worker["id"], same_worker["kudos_rewards"]) == (worker["id"], worker["kudos_rewards"])

    # Killed outright, `up` cannot stop its children itself: the kernel tells them to (Linux PR_SET_PDEATHSIG).
    orphans = second.children()
    second.proc.kill()
    second.proc.wait(timeout=10)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(_alive(pid) for pid in orphans):
        assert time.monotonic() < deadline, f"children {orphans} outlived a killed `up`"
        time.sleep(0.2)


def test_a_port_in_use_is_refused_before_anything_starts(start_up: Callable[..., UpProcess], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        attempt = start_up("--port", str(port), "--data-dir", str(tmp_path / "data"))
        assert attempt.proc.wait(timeout=60) == 1
    assert f"port {port} on 127.0.0.1 is already in use" in attempt.output()
    assert not (tmp_path / "data").exists()


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=None, secret_key=None, port=free_port())


def _plan(name: str = "box-local") -> up.WorkerPlan:
    entry = catalogue.ModelEntry("openhorde-tiny", "stable diffusion 1", False, False, "tiny")
    return up.WorkerPlan(name=name, models=["openhorde-tiny"], entries=[entry], config=None)


async def _admin_and_worker(settings: Settings, api_key: str, worker_name: str) -> tuple[int, bool, str | None]:
    """The key's user (id, admin?) and the owner of ``worker_name`` (display name), after a check-in."""
    db, ctx = await prepare_storage(settings)
    try:
        async with db.store() as store:
            user = await accounts.authenticate(store, ctx.secret, ctx.keys, api_key)
            if await workers.get_worker_by_name(store, worker_name) is None:
                await workers.check_in(
                    store,
                    ctx,
                    user,
                    workers.CheckIn(worker_name, workers.WorkerCapabilities(models=("openhorde-tiny",))),
                )
            worker = await workers.get_worker_by_name(store, worker_name)
            owner = await accounts.get_user(store, worker.user_id) if worker else None
            return user.id, user.is_admin, owner.display_name if owner else None
    finally:
        await db.dispose()


def test_the_local_admin_is_kept_and_repaired(tmp_path: Path) -> None:
    settings, plan = _settings(tmp_path), _plan()
    key_file = settings.data_dir / "local-admin.key"
    created, _ = asyncio.run(up.prepare(settings, plan))
    assert created.note and "Created the local admin admin#" in created.note
    assert key_file.read_text().strip() == created.api_key and key_file.stat().st_mode & 0o777 == 0o600
    user_id, is_admin, owner = asyncio.run(_admin_and_worker(settings, created.api_key, plan.name))
    assert is_admin and owner == f"admin#{user_id}"

    kept, _ = asyncio.run(up.prepare(settings, plan))
    assert (kept.user_id, kept.api_key, kept.note) == (user_id, created.api_key, None)

    key_file.write_text("not-a-key-of-anyone\n")  # e.g. the server secret changed since
    repaired, _ = asyncio.run(up.prepare(settings, plan))
    assert repaired.user_id == user_id and repaired.api_key != created.api_key
    assert repaired.note and "matches no user" in repaired.note and "new API key" in repaired.note
    assert key_file.read_text().strip() == repaired.api_key

    key_file.unlink()
    other, _ = asyncio.run(up.prepare(settings, _plan("another-machine")))  # no saved key and no worker to go by
    assert other.user_id != user_id and other.note and other.note.startswith("Created the local admin")


def test_the_worker_configuration_decides_models_name_and_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("OPENHORDE_WORKER_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    assert up.plan_worker(None).tiny_only and up.plan_worker(None).name == up.default_worker_name()

    models = {"models": [{"name": "my-xl", "baseline": "sdxl", "file": "my-xl.safetensors", "nsfw": True}]}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    config = tmp_path / "custom.yaml"
    config.write_text(yaml.safe_dump({"models": ["my-xl"], "catalogue": "models.yaml", "name": "box"}))
    plan = up.plan_worker(config)
    assert (plan.name, plan.models, plan.tiny_only, plan.config) == ("box", ["my-xl"], False, config)
    assert [(e.name, e.baseline, e.nsfw) for e in plan.entries] == [("my-xl", "stable_diffusion_xl", True)]
    _, added = asyncio.run(up.prepare(_settings(tmp_path), plan))
    assert added == ["my-xl"]

    config.write_text(yaml.safe_dump({"models": ["missing"]}))
    with pytest.raises(UpError, match=r"'missing' is not in the worker's catalogue.*--model-reference"):
        up.plan_worker(config)


def test_a_model_reference_fills_the_catalogue_and_reaches_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("OPENHORDE_WORKER_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    reference = tmp_path / "stable_diffusion.json"
    reference.write_bytes(reference_json(reference_record("Deliberate", showcases=["https://example.org/d.webp"])))
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump({"models": ["Deliberate", "openhorde-tiny"]}))
    plan = up.plan_worker(config, str(reference))
    assert [entry.name for entry in plan.entries] == ["openhorde-tiny"] and list(plan.reference_models) == [
        "Deliberate"
    ]
    settings = _settings(tmp_path)
    asyncio.run(up.prepare(settings, plan))

    async def entries() -> dict[str, catalogue.ModelEntry]:
        db, _ctx = await prepare_storage(settings)
        try:
            async with db.store() as store:
                return {entry.name: entry for entry in await catalogue.list_models(store)}
        finally:
            await db.dispose()

    assert asyncio.run(entries())["Deliberate"].showcases == ("https://example.org/d.webp",)
    written = up.write_worker_config(plan, tmp_path / "local-worker.yaml", "http://127.0.0.1:7001", "k" * 22)
    assert yaml.safe_load(written.read_text())["model_reference"] == str(reference)
