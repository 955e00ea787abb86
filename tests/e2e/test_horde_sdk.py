"""Conformance: drive a live OpenHorde server with the independent client library horde-sdk.

The SDK needs Python >= 3.12, so it lives in its own venv (`.venv-sdk`, made by
`scripts/setup_sdk_venv.sh`) and `tests/e2e/sdk_driver.py` runs there as a subprocess. See
`tests/e2e/HORDE_SDK_NOTES.md` for what the SDK requires.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import LiveServer, openhorde_command

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup_sdk_venv.sh"
SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
DRIVER = Path(__file__).resolve().parent / "sdk_driver.py"
DRIVER_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The .venv-sdk interpreter, creating the venv with the setup script when it is missing."""
    if not SDK_PYTHON.exists():
        try:
            proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f".venv-sdk is missing and {SETUP_SCRIPT.name} could not run: {e}")
        if proc.returncode != 0 or not SDK_PYTHON.exists():
            pytest.skip(
                f".venv-sdk is missing and {SETUP_SCRIPT.name} failed (exit {proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}"
            )
    return SDK_PYTHON


def _driver_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "AI_HORDE_URL",
            "AI_HORDE_DEV_URL",
            "AI_HORDE_DEV_APIKEY",
            "TESTS_ONGOING",
            "HORDE_SDK_TELEMETRY",
        }
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _summary(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("SDK_SUMMARY "):
            return json.loads(line.removeprefix("SDK_SUMMARY "))
    return None


def _api(server: LiveServer, method: str, path: str, body: dict[str, Any] | None, apikey: str = "") -> Any:
    request = urllib.request.Request(
        server.api_url + "v2/" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **({"apikey": apikey} if apikey else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _has_role(server: LiveServer, apikey: str, role: str) -> bool:
    if role != "admin":
        return bool(_api(server, "GET", "find_user", None, apikey).get(role))
    # find_user shows no admin flag: withdrawing news that does not exist is a 404 to an admin, a 403 to others.
    try:
        _api(server, "DELETE", "status/news/2147483647", None, apikey)
    except urllib.error.HTTPError as e:
        return e.code == 404
    return True


def _user_with_role(server: LiveServer, database_url: str | None, username: str, role: str, folder: Path) -> str:
    """A registered user given `role` with `openhorde admin set-role`; its API key once the server sees the role."""
    user = _api(server, "POST", "register", {"username": username})
    command = [*openhorde_command(), "admin", "set-role", str(user["id"]), role, "--data-dir", str(server.data_dir)]
    env = dict(os.environ, **({"OPENHORDE_DATABASE_URL": database_url} if database_url else {}))
    done = subprocess.run(command, capture_output=True, cwd=folder, timeout=120, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    # On SQLite the server hears of the change only when its key cache expires (README, "The hot path").
    deadline = time.monotonic() + 30
    while not _has_role(server, user["apikey"], role):
        assert time.monotonic() < deadline, f"the server never saw {username}'s {role} role"
        time.sleep(0.2)
    return str(user["apikey"])


def test_horde_sdk_image_round_trip(
    live_server: Callable[..., Any], db_backend: tuple[str, str | None], sdk_python: Path, tmp_path: Path
) -> None:
    server = live_server()
    database_url = db_backend[1]  # the CLI must reach the server's database, not only its data directory
    admin_key = _user_with_role(server, database_url, "sdk_admin", "admin", tmp_path)
    customizer_key = _user_with_role(server, database_url, "sdk_customizer", "customizer", tmp_path)
    try:
        proc = subprocess.run(
            [str(sdk_python), str(DRIVER), server.api_url, admin_key, customizer_key],
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT_S,
            env=_driver_env(),
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"sdk_driver.py ran past {DRIVER_TIMEOUT_S}s\n--- driver stderr ---\n"
            f"{(e.stderr or b'')[-8000:]!r}\n--- server log ---\n{server.log_tail()}"
        )
    summary = _summary(proc.stdout)
    report = (
        f"[{server.backend}] sdk_driver.py exit {proc.returncode}\nsummary: {json.dumps(summary, indent=1)}\n"
        f"--- driver stderr (tail) ---\n{proc.stderr[-12000:]}\n--- server log (tail) ---\n"
        f"{server.log_tail()}"
    )
    assert proc.returncode == 0, report
    assert summary is not None and summary["ok"] is True, report
    assert all(v == "ok" for v in summary["checks"].values()), report
    sync_images = summary["sync_generation"]["images"]
    async_images = summary["async_generation"]["images"]
    assert len(sync_images) == 2 and len(async_images) == 1, report
    for image in sync_images + async_images:
        assert image["size"] == [64, 64] and image["img_is_url"], report
    assert summary["worker"]["jobs"] == 3 and len(summary["worker"]["rewards"]) == 3, report
    assert summary["server_version"], report
    # The newer endpoints each had their check (a check left out would be missing, not failed).
    for name in ("generate_check", "stats_img", "documents", "news", "styles_image", "collections", "alchemy"):
        assert name in summary["checks"], report
