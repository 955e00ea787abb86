"""Bounded loops, groups of actor tasks and the event loop the benchmarks run on.

Every loop in a benchmark is bounded twice, by a deadline and by ``MAX_LOOP_ITERATIONS``, so that a run
always ends by itself, whatever the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import time
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

MAX_LOOP_ITERATIONS = 1_000_000
ERROR_BACKOFF_S = 0.2  # after a failed call, so that a broken server is not hammered by every actor at once
STOP_GRACE_S = 3.0  # how long actors get to finish their current call when a phase ends

T = TypeVar("T")


async def sleep_until_or(seconds: float, deadline: float) -> None:
    """Sleep ``seconds`` but never past ``deadline`` (monotonic)."""
    await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


def spawn(coros: list[Coroutine[Any, Any, None]]) -> list[asyncio.Task[None]]:
    """Start coroutines as tasks."""
    return [asyncio.create_task(c) for c in coros]


async def stop_tasks(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Ask tasks to stop, cancel stragglers, print driver bugs (an exception in an actor is ours)."""
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for res in results:
        if isinstance(res, Exception):
            traceback.print_exception(res, file=sys.stderr)


def run_loop(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """Run ``main`` on uvloop when installed and wanted (less driver CPU per call), else on asyncio."""
    uvloop: Any = None
    if use_uvloop:
        with contextlib.suppress(ImportError):
            uvloop = importlib.import_module("uvloop")
    if uvloop is None:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result
