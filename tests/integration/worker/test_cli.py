"""``openhorde worker``: lazy imports, configuration errors, and a real worker process stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openhorde.cli.main import app
from tests.live_server import Horde


@pytest.fixture
def clean_worker_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The environment without OPENHORDE_WORKER_* variables, in a folder without a worker.yaml."""
    for name in list(os.environ):
        if name.startswith("OPENHORDE_WORKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return dict(os.environ)


def test_the_server_commands_do_not_import_torch() -> None:
    code = "import sys, openhorde.cli.main; print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"


def test_bad_settings_exit_2_naming_the_option(clean_worker_environment: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["worker", "--queue-size", "9", "--device", "tpu"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # undo the console's line wrapping
    assert "option 'queue_size' from command line --queue-size" in output
    assert "option 'device' from command line --device" in output


def test_a_missing_config_file_is_reported(clean_worker_environment: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "--config", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2 and "no such file" in " ".join(result.output.split())


def test_the_subcommands_are_listed() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"])
    assert result.exit_code == 0
    assert "fetch-vocab" in result.output and "export-tiny" in result.output


# A whole worker process costs a torch import and a model build (10-20 s on a busy 2-core machine); the
# database behind the horde makes no difference to the worker, so this runs on SQLite only.
@pytest.mark.e2e  # an `openhorde worker` process
@pytest.mark.live  # the worker process connects
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_worker_process_serves_a_request_and_stops_on_ctrl_c(
    backend: str, horde: Horde, clean_worker_environment: dict[str, str], tmp_path: Path
) -> None:
    owner = await horde.register("owner")
    queued = await horde.generate(
        owner, models=["openhorde-tiny"], params={"width": 64, "height": 64, "steps": 2, "sampler_name": "k_euler"}
    )
    request_id = queued.json()["id"]
    command = [
        *(sys.executable, "-m", "openhorde", "worker", "--url", f"{horde.client.base_url}/api"),
        *("--api-key", owner.apikey, "--name", "cli-worker", "--device", "cpu", "--log-format", "json"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, env=clean_worker_environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120  # the process imports torch and builds the model first
        while not (await horde.client.get(f"/api/v2/generate/check/{request_id}")).json()["done"]:
            assert process.returncode is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker did not finish the request"
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    events = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert {"started", "job_generated", "job_submitted", "stop_requested", "stopped"} <= set(names)
    started = next(event for event in events if event["event"] == "started")
    assert "cli-worker" in started["message"] and "device: cpu" in started["message"]
    generated = next(event for event in events if event["event"] == "job_generated")
    assert generated["model"] == "openhorde-tiny" and generated["seconds"] > 0 and generated["job_id"]


def test_export_tiny_writes_a_checkpoint_and_its_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "export-tiny", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny" / "openhorde-tiny.safetensors").is_file()
    assert (tmp_path / "tiny" / "openhorde-tiny-config").is_dir()
    assert "Catalogue entry" in result.output
