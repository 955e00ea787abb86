"""What a server process does to its garbage collector once its app is built (``freeze_startup_objects``)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from openhorde.api.app import create_app, freeze_startup_objects
from openhorde.config import Settings
create_app(Settings(_env_file=None))
before = gc.get_freeze_count()
freeze_startup_objects()
print(before, gc.get_freeze_count(), *gc.get_threshold())
"""


def test_a_server_process_freezes_what_it_built_and_collects_young_objects_less_often() -> None:
    # In a process of its own: frozen objects are never collected, which a test process building apps must avoid.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, frozen, young, middle, old = (int(word) for word in done.stdout.split())
    assert before == 0 and frozen > 100_000, done.stdout  # the modules, the app, its routes and schemas
    assert (young, middle, old) == (20_000, 20, 20)
