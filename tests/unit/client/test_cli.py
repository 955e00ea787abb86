"""The client commands speak HTTP only: importing them loads nothing of the server or the worker."""

from __future__ import annotations

import subprocess
import sys


def test_the_client_imports_nothing_of_the_server_or_the_worker() -> None:
    code = (
        "import sys, openhorde.client.cli\n"
        "bad = ('openhorde.api', 'openhorde.domain', 'openhorde.storage', 'openhorde.worker', 'openhorde.config',"
        " 'torch', 'sqlalchemy', 'fastapi')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
