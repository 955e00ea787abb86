"""The child processes of ``openhorde up``: started in their own process groups with their output in log files,
watched until a stop signal, then stopped one by one, last started first.

Own process groups, because a Ctrl-C on the terminal goes to the whole foreground group: the server would stop
at the same moment as the worker, which still has a job to hand in. Here only ``up`` gets it and decides the
order. On Linux each child also asks the kernel for SIGTERM should ``up`` itself be killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape

POLL_SECONDS = 0.2
KILL_WAIT_SECONDS = 5.0
LOG_TAIL_LINES = 25
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop ``up`` (there is no SIGHUP on Windows, where this module must still import: the ``openhorde``
command imports it, and a volunteer's worker may well run on Windows)."""
PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent dies."""

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


class UpError(Exception):
    """``up`` cannot go on; the message says why and what to do."""


def report(error: UpError) -> None:
    """Print the error on stderr (its text as it is: log lines may hold brackets that look like markup)."""
    errors.print(f"[red]Error:[/red] {escape(str(error))}")


def parse_entry(line: str) -> dict[str, Any] | None:
    """The JSON log entry on this line (the worker logs with ``--log-format json``), if it is one."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "event" in entry else None


def log_entries(path: Path) -> list[dict[str, Any]]:
    """The JSON log entries in a log file so far."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [entry for line in lines if (entry := parse_entry(line)) is not None]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, JSON entries shown as ``time level message``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "  (no log)"
    shown = []
    for line in text.splitlines()[-lines:]:
        entry = parse_entry(line)
        if entry is None:
            shown.append(f"  {line}")
            continue
        shown.append(f"  {str(entry.get('time', ''))[11:19]} {entry.get('level', '')} {entry.get('message', '')}")
        shown.extend(f"  {error}" for error in str(entry.get("error", "")).splitlines())
    return "\n".join(shown)


@dataclass
class Child:
    """A process ``up`` started, its log file, and how long it may take to stop."""

    role: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_timeout: float
    stop_hint: str = ""

    def check(self) -> None:
        """``UpError`` with the end of its log when the process has exited."""
        code = self.proc.poll()
        if code is not None:
            raise UpError(
                f"the {self.role} stopped (exit code {code}). Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )


def spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``openhorde ARGS`` in its own process group, its output in ``log_path`` (the last one kept as .1)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    die_with_parent = None
    if sys.platform == "linux":
        libc = ctypes.CDLL(None)  # loaded here: the hook runs in the child between fork and exec

        def die_with_parent() -> None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "openhorde", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent,
        )


class Supervisor:
    """Starts children and watches them; while it is entered, SIGINT, SIGTERM and SIGHUP are counted instead of
    killing ``up``: the first asks it to stop, more hurry the stop along. Leaving it stops every child."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.signals = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Supervisor:
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._count)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.shut_down()
        finally:
            for number, handler in self._previous.items():
                signal.signal(number, handler)

    def _count(self, number: int, frame: FrameType | None) -> None:
        self.signals += 1

    def start(self, role: str, args: list[str], log_path: Path, stop_timeout: float, stop_hint: str = "") -> Child:
        """Start ``openhorde ARGS`` as the child called ``role``; call it outside ``wait_until``, whose spinner runs
        a thread (a pre-exec hook is only safe in a process with no other threads)."""
        child = Child(role, spawn(args, log_path), log_path, stop_timeout, stop_hint)
        self.children.append(child)
        return child

    def wait_until(self, ready: Callable[[], bool], what: Callable[[], str], timeout: float | None = None) -> bool:
        """Poll until ``ready()`` with a spinner showing ``what()`` and the time; False if asked to stop meanwhile.

        ``UpError`` when a child exits or ``timeout`` seconds pass first.
        """
        started = time.monotonic()
        with console.status(what()) as status:
            while not ready():
                if self.signals:
                    return False
                for child in self.children:
                    child.check()
                elapsed = time.monotonic() - started
                if timeout is not None and elapsed > timeout:
                    raise UpError(f"{what()}: not done within {timeout:.0f} s.")
                status.update(f"{what()}  [dim]{elapsed:.0f} s[/dim]")
                time.sleep(POLL_SECONDS)
        return True

    def watch(self) -> None:
        """Return at the first stop signal; ``UpError`` as soon as a child exits."""
        while not self.signals:
            for child in self.children:
                child.check()
            time.sleep(POLL_SECONDS)

    def shut_down(self) -> None:
        """Stop the children, the last started first."""
        if not any(child.proc.poll() is None for child in self.children):
            return
        for child in reversed(self.children):
            with console.status(f"Stopping the {child.role}{child.stop_hint}"):
                self.stop(child)
        console.print("OpenHorde stopped.")

    def stop(self, child: Child) -> None:
        """SIGINT (the child's graceful stop), again at another stop signal, SIGKILL after its stop timeout."""
        if child.proc.poll() is not None:
            return
        child.proc.send_signal(signal.SIGINT)
        seen, deadline = self.signals, time.monotonic() + child.stop_timeout
        while child.proc.poll() is None and time.monotonic() < deadline:
            if self.signals > seen:  # the user insists: the worker and uvicorn both quit at a second SIGINT
                seen = self.signals
                child.proc.send_signal(signal.SIGINT)
            time.sleep(POLL_SECONDS)
        if child.proc.poll() is None:
            errors.print(f"The {child.role} did not stop within {child.stop_timeout:.0f} s; killing it.")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait(KILL_WAIT_SECONDS)
