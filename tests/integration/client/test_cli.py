"""The command-line client (``openhorde generate``, ``models``, ``workers``, ``kudos``) as a real process against
a live server; the test plays the worker through the real HTTP API (pop, upload, submit) while the client waits.

The client does not care which database the server uses, so most tests run on SQLite only; the round trip
runs on every backend.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.live_server import Account, Horde

# `python -m openhorde` client processes against the server's URL.
pytestmark = [pytest.mark.e2e, pytest.mark.live]

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
SMALL = ["--width", "64", "--height", "64", "--steps", "5", "--poll-interval", "0.1"]
PROCESS_TIMEOUT_S = 60.0


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def client_env(url: str) -> dict[str, str]:
    """This environment without OPENHORDE_* settings or forced colours, pointed at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENHORDE_") and k != "FORCE_COLOR"}
    env.update(OPENHORDE_URL=url, NO_COLOR="1", COLUMNS="200")
    return env


class Cli:
    """Runs ``python -m openhorde …`` as a subprocess against one server."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openhorde",
            *args,
            cwd=self.cwd,
            env={**client_env(self.url), **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.started.append(process)
        return process

    async def stop_all(self) -> None:
        """Kill whatever a failed test left running."""
        for process in self.started:
            if process.returncode is None:
                process.kill()
            await process.communicate()

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        return await finish(await self.start(*args, env=env))


async def finish(process: asyncio.subprocess.Process, already_read: str = "") -> Ran:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=PROCESS_TIMEOUT_S)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), already_read + stderr.decode())


async def read_request_id(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """Read the client's stderr up to its 'Queued request <id>' line; the id and what was read."""
    assert process.stderr is not None
    seen = ""
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), timeout=PROCESS_TIMEOUT_S)).decode()
        seen += line
        if not line:
            pytest.fail(f"the client ended without queueing a request:\n{seen}")
        if match := re.search(r"Queued request (\S+) ", line):
            return match.group(1), seen


async def pop_when_queued(
    horde: Horde, owner: Account, process: asyncio.subprocess.Process, **pop: Any
) -> dict[str, Any]:
    """Pop as a worker until the client's request is handed out."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        job = await horde.pop(owner, **pop)
        if job["ids"]:
            return job
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    ran = await finish(process)
    pytest.fail(f"no job was handed out; the client said:\n{ran}")


async def queued_images(horde: Horde) -> int:
    response = await horde.client.get("/api/v2/status/performance")
    assert response.status_code == 200, response.text
    return int(response.json()["queued_requests"])


def png(path: Path, mode: str = "RGB", color: Any = (10, 120, 200)) -> Path:
    Image.new(mode, (64, 64), color).save(path, format="PNG")
    return path


@pytest.fixture
async def cli(horde: Horde, tmp_path: Path) -> AsyncIterator[Cli]:
    runner = Cli(f"http://127.0.0.1:{horde.settings.port}", tmp_path)
    yield runner
    await runner.stop_all()


# -- generate ----------------------------------------------------------------------------------


async def test_generate_writes_each_image_with_its_seed_model_and_settings(
    horde: Horde, cli: Cli, tmp_path: Path
) -> None:
    requester, owner = await horde.register("alice", kudos=100), await horde.register("wally")
    out = tmp_path / "out"
    args = ["generate", "a lighthouse", "--negative", "fog", *SMALL, "-n", "2", "--seed", "42"]
    args += ["--model", "stable_diffusion", "--lora", "shiny:0.5", "--api-key", requester.apikey, "--out", str(out)]
    process = await cli.start(*args, "--hypernetwork", "anime:0.7")

    job = await pop_when_queued(horde, owner, process, amount=2, allow_lora=True, allow_hypernetworks=True)
    payload = job["payload"]
    assert payload["prompt"] == "a lighthouse###fog"
    [lora] = payload["loras"]
    assert (lora["name"], lora["model"], lora["clip"]) == ("shiny", 0.5, 0.5)
    assert payload["hypernetworks"] == [{"name": "anime", "strength": 0.7}]
    seeds = [int(payload["seed"]) + index for index in range(2)]
    for index, state in enumerate(["ok", "censored"]):
        submitted = await horde.upload_and_submit(owner, job, index, seed=seeds[index], state=state)
        assert submitted.status_code == 200, submitted.text
    ran = await finish(process)

    assert ran.code == 0, ran
    request_id = re.search(r"Queued request (\S+) ", ran.stderr).group(1)  # type: ignore[union-attr]
    assert ran.lines == [str(out / f"{request_id}-{index}.webp") for index in range(2)]
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    by_id = {g["id"]: g for g in status["generations"]}
    for path in map(Path, ran.lines):
        with Image.open(path) as image:
            assert image.format == "WEBP" and image.size == (64, 64)
        notes = json.loads(path.with_suffix(".json").read_text())
        generation = by_id[notes["generation_id"]]
        assert notes["seed"] == generation["seed"] and notes["params"]["seed"] == generation["seed"]
        assert notes["model"] == "stable_diffusion" and notes["worker_name"] == "worker-1"
        assert notes["worker_id"] == generation["worker_id"] and notes["censored"] == generation["censored"]
        assert (notes["prompt"], notes["negative"], notes["request_id"]) == ("a lighthouse", "fog", request_id)
        assert notes["server"] == cli.url and notes["params"]["loras"] == [{"name": "shiny", "model": 0.5, "clip": 0.5}]
    assert sorted(json.loads(p.with_suffix(".json").read_text())["seed"] for p in map(Path, ran.lines)) == sorted(
        str(s) for s in seeds
    )
    assert "censored" in ran.stderr
    # Off a terminal the progress bar is drawn once, at the end, not once per poll.
    assert sum("━" in line for line in ran.stderr.splitlines()) <= 1


@SQLITE_ONLY
async def test_inpainting_sends_the_source_image_mask_and_strength(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    owner = await horde.register("wally")
    source, mask = png(tmp_path / "source.png"), png(tmp_path / "mask.png", "L", 255)
    process = await cli.start(
        "generate", "a boat", *SMALL, "--source-image", str(source), "--mask", str(mask), "--inpaint",
        "--denoise", "0.6", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    job = await pop_when_queued(horde, owner, process)
    assert job["source_processing"] == "inpainting" and job["source_image"] and job["source_mask"]
    assert job["payload"]["denoising_strength"] == 0.6
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    ran = await finish(process)
    assert ran.code == 0, ran
    notes = json.loads(Path(ran.lines[0]).with_suffix(".json").read_text())
    assert notes["source_processing"] == "inpainting" and notes["params"]["denoising_strength"] == 0.6


@SQLITE_ONLY
async def test_post_processing_options_reach_the_worker(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    owner = await horde.register("wally")
    process = await cli.start(
        "generate", "a portrait", *SMALL, "--upscale", "RealESRGAN_x2plus", "--facefix", "CodeFormers",
        "--facefix-strength", "0.4", "--strip-background", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    job = await pop_when_queued(horde, owner, process, allow_post_processing=True)
    assert job["payload"]["post_processing"] == ["CodeFormers", "RealESRGAN_x2plus", "strip_background"]
    assert job["payload"]["facefixer_strength"] == 0.4
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    ran = await finish(process)
    assert ran.code == 0, ran


@SQLITE_ONLY
async def test_controlnet_options_send_the_control_image_as_the_source(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    owner = await horde.register("connie")
    picture = png(tmp_path / "pose.png")
    process = await cli.start(
        "generate", "a dancer", *SMALL, "--control-type", "openpose", "--control-image", str(picture),
        "--return-control-map", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    job = await pop_when_queued(horde, owner, process, allow_controlnet=True)
    assert job["source_image"] and job["source_processing"] == "img2img"
    payload = job["payload"]
    assert (payload["control_type"], payload["image_is_control"], payload["return_control_map"]) == (
        "openpose",
        False,
        True,
    )
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    ran = await finish(process)
    assert ran.code == 0, ran


@SQLITE_ONLY
async def test_a_bad_api_key_exits_1_with_the_servers_message(horde: Horde, cli: Cli) -> None:
    ran = await cli("generate", "a lighthouse", *SMALL, "--api-key", "not-a-key-of-this-horde")
    assert ran.code == 1, ran
    assert re.search(r"^Error: .+ \(InvalidAPIKey\)$", ran.stderr, re.M), ran.stderr
    assert ran.stdout == "" and await queued_images(horde) == 0


@SQLITE_ONLY
async def test_a_refused_payload_names_the_rc(horde: Horde, cli: Cli) -> None:
    ran = await cli("generate", "a lighthouse", *SMALL, "--sampler", "k_nonexistent")
    assert ran.code == 1, ran
    assert "Error:" in ran.stderr and "(" in ran.stderr and ran.stdout == ""


@SQLITE_ONLY
async def test_ctrl_c_cancels_the_request_on_the_server_and_exits_130(horde: Horde, cli: Cli) -> None:
    owner = await horde.register("wally")
    process = await cli.start("generate", "a lighthouse", *SMALL)
    request_id, seen = await read_request_id(process)
    await asyncio.sleep(0.5)  # well inside the waiting loop
    process.send_signal(signal.SIGINT)
    ran = await finish(process, seen)

    assert ran.code == 130, ran
    assert f"cancelled request {request_id} on the server" in ran.stderr
    state = await horde.check(request_id)
    assert state["done"] and not state["faulted"] and state["finished"] == 0 and state["waiting"] == 0
    assert (await horde.pop(owner))["ids"] == []


@SQLITE_ONLY
async def test_a_faulted_request_exits_4_with_the_reason(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    owner = await horde.register("wally")
    process = await cli.start("generate", "a lighthouse", *SMALL, "--out", str(tmp_path / "out"))
    for _attempt in range(3):  # three failed jobs fault a request
        job = await pop_when_queued(horde, owner, process)
        response = await horde.client.post(
            "/api/v2/generate/submit",
            json={"id": job["ids"][0], "state": "faulted", "seed": 1, "generation": None},
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text
    ran = await finish(process)
    assert ran.code == 4, ran
    assert re.search(r"^Error: Request \S+ faulted on the server: .+\(0 of 1 images delivered\)$", ran.stderr, re.M)
    assert ran.stdout == ""


@SQLITE_ONLY
async def test_a_request_cancelled_by_someone_else_exits_4(horde: Horde, cli: Cli) -> None:
    process = await cli.start("generate", "a lighthouse", *SMALL)
    request_id, seen = await read_request_id(process)
    assert (await horde.client.delete(f"/api/v2/generate/status/{request_id}")).status_code == 200
    ran = await finish(process, seen)
    assert ran.code == 4, ran
    assert f"Request {request_id} was cancelled on the server (0 of 1 images delivered)" in ran.stderr


@SQLITE_ONLY
async def test_the_timeout_cancels_the_request_and_exits_4(horde: Horde, cli: Cli) -> None:
    ran = await cli("generate", "a lighthouse", *SMALL, "--timeout", "0.5")
    assert ran.code == 4, ran
    request_id = re.search(r"Queued request (\S+) ", ran.stderr).group(1)  # type: ignore[union-attr]
    assert "not finished after 0.5 s; cancelled it on the server" in ran.stderr
    state = await horde.check(request_id)
    assert state["done"] and state["waiting"] == 0


@SQLITE_ONLY
async def test_bad_input_files_are_refused_before_anything_is_sent(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    picture = png(tmp_path / "source.png")
    cases = {
        ("--source-image", str(text)): "is not an image that can be read",
        ("--source-image", str(tmp_path / "absent.png")): "does not exist",
        ("--source-image", str(picture), "--mask", str(text)): "is not an image that can be read",
        ("--mask", str(picture)): "needs --source-image",
        ("--source-image", str(picture), "--inpaint", "--outpaint"): "not both",
        ("--lora", "shiny:strong"): "is not a number",
        ("--hypernetwork", ":1"): "no hypernetwork name",
        ("--width", "100",): "not a multiple of 64",
        ("--upscale", "RealESRGAN_x8"): "is not one of RealESRGAN_x4plus",
        ("--facefix", "Restorer"): "is not one of GFPGAN, CodeFormers",
        ("--facefix-strength", "0.5"): "needs --facefix",
        ("--control-type", "mlsd", "--control-image", str(picture)): "is not one of canny, hed",
        ("--control-type", "canny"): "needs --control-image",
        ("--return-control-map",): "needs --control-type",
        ("--control-type", "canny", "--control-image", str(picture), "--source-image", str(picture)): "not a source",
    }  # fmt: skip
    results = await asyncio.gather(*(cli("generate", "a lighthouse", *SMALL, *extra) for extra in cases))
    for (extra, message), ran in zip(cases.items(), results, strict=True):
        assert ran.code == 2, (extra, ran)
        assert message in " ".join(ran.stderr.split()), (extra, ran.stderr)
    assert await queued_images(horde) == 0


# -- servers that are not there, or not a horde ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_client(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openhorde", *args],
        env=client_env(url),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )


def test_a_server_that_is_down_exits_3_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    generated = run_client(url, "generate", "a lighthouse")
    listed = run_client(url, "models")  # a GET, retried twice with backoff before giving up
    assert time.monotonic() - started < 30
    for ran in (generated, listed):
        assert ran.returncode == 3, ran
        assert f"Error: Cannot reach {url}" in ran.stderr and "is the server running?" in ran.stderr


@pytest.fixture
def plain_web_server(tmp_path: Path) -> Iterator[str]:
    """A web server that is not a horde: it serves files, and 404 pages for everything else."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    (tmp_path / "api" / "v2").mkdir(parents=True)
    (tmp_path / "api" / "v2" / "workers").write_text("<html>hello</html>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_no_horde_exits_3(plain_web_server: str) -> None:
    not_found = run_client(plain_web_server, "models")
    assert not_found.returncode == 3, not_found
    assert "404" in not_found.stderr and "AI Horde API" in not_found.stderr
    not_json = run_client(plain_web_server, "workers")
    assert not_json.returncode == 3, not_json
    assert "not JSON" in not_json.stderr and "AI Horde API" in not_json.stderr


# -- models, workers, kudos --------------------------------------------------------------------


@SQLITE_ONLY
async def test_models_and_workers_as_tables_and_json(horde: Horde, cli: Cli) -> None:
    owner = await horde.register("wally")
    await horde.pop(owner, name="box-one")
    models_json, models_table, workers_json, workers_table = await asyncio.gather(
        cli("models", "--json"), cli("models"), cli("workers", "--json"), cli("workers")
    )
    for ran in (models_json, models_table, workers_json, workers_table):
        assert ran.code == 0, ran

    [model] = json.loads(models_json.stdout)
    assert set(model) == {"name", "count", "queued", "jobs", "eta", "performance"}
    assert model["name"] == "stable_diffusion" and model["count"] == 1
    assert "stable_diffusion" in models_table.stdout and "workers" in models_table.stdout

    [worker] = json.loads(workers_json.stdout)
    assert set(worker) == {
        "name", "id", "online", "models", "kudos_rewards", "performance", "maintenance_mode", "threads",
        "requests_fulfilled", "uptime",
    }  # fmt: skip
    assert (worker["name"], worker["online"], worker["models"]) == ("box-one", True, ["stable_diffusion"])
    assert worker["maintenance_mode"] is False and isinstance(worker["kudos_rewards"], float)
    assert "box-one" in workers_table.stdout and worker["id"] in workers_table.stdout


@SQLITE_ONLY
async def test_kudos_balance_and_transfer(horde: Horde, cli: Cli) -> None:
    alice, bob = await horde.register("alice", kudos=100), await horde.register("bob")
    balance = await cli("kudos", "--json", env={"OPENHORDE_API_KEY": alice.apikey})
    assert balance.code == 0, balance
    assert json.loads(balance.stdout) == {"username": alice.username, "id": alice.id, "kudos": 100.0}
    table = await cli("kudos", "--api-key", alice.apikey)
    assert table.code == 0 and alice.username in table.stdout and "100" in table.stdout

    moved = await cli("kudos", "transfer", bob.username, "10", "--api-key", alice.apikey)
    assert moved.code == 0, moved
    assert moved.stdout.strip() == f"Transferred 10 kudos to {bob.username}."
    as_json = await cli("kudos", "transfer", bob.username, "5", "--api-key", alice.apikey, "--json")
    assert json.loads(as_json.stdout) == {"username": bob.username, "transferred": 5}
    bob_now = (await horde.client.get("/api/v2/find_user", headers=bob.headers)).json()
    assert bob_now["kudos"] == 15

    too_much = await cli("kudos", "transfer", bob.username, "1000", "--api-key", alice.apikey)
    assert too_much.code == 1 and "(KudosTransferNotEnough)" in too_much.stderr, too_much
    anonymous = await cli("kudos", "transfer", bob.username, "1")
    assert anonymous.code == 1 and "(KudosTransferFromAnon)" in anonymous.stderr, anonymous
    bad_amount = await cli("kudos", "transfer", bob.username, "0", "--api-key", alice.apikey)
    assert bad_amount.code == 2, bad_amount
