"""The ``openhorde`` command loads the server's and the worker's commands only when they are used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openhorde.cli.main import OpenHordeGroup, app

SERVER_AND_WORKER_MODULES = (
    "sqlalchemy",
    "uvicorn",
    "torch",
    "pydantic_settings",
    "openhorde.domain",
    "openhorde.cli.admin",
    "openhorde.cli.serve",
    "openhorde.cli.up",
    "openhorde.worker",
)
"""What a client command such as ``openhorde models`` must not import: about a second of start-up."""


def _heavy_modules_after(code: str) -> list[str]:
    """The server and worker modules in ``sys.modules`` once ``code`` has run in a fresh interpreter."""
    report = f"import sys; print(sorted(m for m in sys.modules if m.startswith({SERVER_AND_WORKER_MODULES!r})))"
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip().splitlines()


def _output(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())  # undo the console's line wrapping


def test_importing_the_app_loads_no_server_or_worker_module() -> None:
    assert _heavy_modules_after("import openhorde.cli.main") == ["[]"]


def test_a_client_command_runs_without_loading_them() -> None:
    code = "from openhorde.cli.main import app\napp(['models', '--help'], standalone_mode=False)"
    assert _heavy_modules_after(code)[-1] == "[]"


def test_the_command_list_shows_every_lazy_command_with_its_help() -> None:
    code, output = _output("--help")
    assert code == 0
    assert "Run a private horde: the server and a local worker" in output  # up
    assert "Run the horde server (API under /api/v2" in output  # serve
    assert "Manage accounts, kudos and the model catalogue" in output  # admin
    assert "Run a worker: pop jobs from a horde" in output  # worker
    assert "List the image models some worker serves" in output  # a client command beside them


def test_a_lazy_command_keeps_its_options_and_subcommands() -> None:
    assert set(OpenHordeGroup.lazy_commands) == {"up", "serve", "admin", "worker"}
    code, output = _output("serve", "--help")
    assert code == 0 and "--workers" in output and "--data-dir" in output
    code, output = _output("admin", "--help")
    assert code == 0 and all(name in output for name in ("create-user", "check-ledger", "supporter", "credits"))
    code, output = _output("up", "--help")
    assert code == 0 and "--worker-config" in output


def test_a_mistyped_command_is_told_the_lazy_names() -> None:
    code, output = _output("serv")
    assert code == 2 and "Did you mean 'serve'?" in output


def test_a_lazy_command_runs_its_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENHORDE_DATABASE_URL", raising=False)  # the data directory's SQLite file, then
    data_dir = str(tmp_path / "horde-data")
    assert _output("admin", "add-model", "lazy-test-model", "--data-dir", data_dir)[0] == 0
    code, output = _output("admin", "models", "--data-dir", data_dir)
    assert code == 0 and "lazy-test-model" in output
