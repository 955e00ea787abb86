"""What the client commands share: the ``--url``, ``--api-key`` and ``--json`` options, messages and the progress
bar on stderr (stdout is kept for results: paths, tables, JSON), and the exit status of each error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar

from openhorde.client.exit_codes import ExitCode, exit_code_for
from openhorde.client.sdk import ClientError, api_base

console = Console()
errors = Console(stderr=True)


def valid_url(value: str) -> str:
    """Typer callback: refuse a ``--url`` that is not an http(s) URL (exit 2)."""
    try:
        api_base(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return value


UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="OPENHORDE_URL", callback=valid_url, help="The horde's address, with or without /api."
    ),
]
ApiKeyOption = Annotated[
    str, typer.Option("--api-key", envvar="OPENHORDE_API_KEY", help="Your API key; the default is anonymous.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]
DEFAULT_POLL_SECONDS = 2.0
PollIntervalOption = Annotated[float, typer.Option(min=0.05, help="Seconds between status checks.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option(min=0, help="Give up (and cancel) after this many seconds; default: wait.", show_default=False),
]
"""The options of a command that waits for the horde: how often it asks, and how long it waits."""


def say(text: str) -> None:
    """A message for the person at the terminal (stderr, so stdout stays clean for scripts)."""
    errors.print(text, markup=False, highlight=False, soft_wrap=True)


def error(text: str) -> None:
    """``Error: <text>`` on stderr."""
    errors.print(f"[bold red]Error:[/bold red] {escape(text)}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """A result as JSON on stdout, unwrapped whatever the terminal's width."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def exit_codes() -> Iterator[None]:
    """Turn the client's errors and Ctrl-C into a message and the exit status they mean."""
    try:
        yield
    except ClientError as exc:
        error(str(exc))
        raise typer.Exit(code=exit_code_for(exc)) from exc
    except KeyboardInterrupt as exc:
        say("Interrupted.")
        raise typer.Exit(code=ExitCode.INTERRUPTED) from exc


def progress_bar() -> ProgressBar:
    """The bar a command shows on stderr while it waits: spinner, state, bar, count, time.

    Off a terminal rich draws the bar once, when it stops, so logs and pipes get one line, not a stream."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return ProgressBar(*columns, console=errors)
