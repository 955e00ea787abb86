"""``openhorde models``, ``workers`` and ``kudos`` (with ``kudos transfer``), and ``register_client_commands``,
which adds them, ``generate`` and ``interrogate`` to the ``openhorde`` command. They work against any AI Horde
v2-compatible server; results go to stdout, messages to stderr, and the exit statuses are ``exit_codes.ExitCode``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from openhorde.client.generate import generate
from openhorde.client.interrogate import interrogate
from openhorde.client.sdk import ANONYMOUS_API_KEY, DEFAULT_URL, HordeClient
from openhorde.client.terminal import ApiKeyOption, JsonOption, UrlOption, console, exit_codes, print_json

HELP_PANEL = "Client (any AI Horde-compatible server)"


def models(
    url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = ANONYMOUS_API_KEY, as_json: JsonOption = False
) -> None:
    """List the image models some worker serves, with their queues."""
    with exit_codes(), HordeClient(url, api_key) as client:
        found = sorted(client.models(), key=lambda m: (-m.count, m.name))
    if as_json:
        print_json([asdict(m) for m in found])
        return
    table = Table("name", "workers", "queued (mps)", "jobs", "eta s", "performance")
    for m in found:
        table.add_row(escape(m.name), str(m.count), f"{m.queued:g}", f"{m.jobs:g}", str(m.eta), f"{m.performance:g}")
    console.print(table)


def workers(
    url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = ANONYMOUS_API_KEY, as_json: JsonOption = False
) -> None:
    """List the horde's image workers."""
    with exit_codes(), HordeClient(url, api_key) as client:
        found = sorted(client.workers(), key=lambda w: (not w.online, w.name))
    if as_json:
        print_json([asdict(w) for w in found])
        return
    table = Table("name", "id", "online", "models", "kudos", "performance", "maintenance")
    for w in found:
        table.add_row(
            escape(w.name),
            w.id,
            "yes" if w.online else "no",
            escape(", ".join(w.models)),
            f"{w.kudos_rewards:g}",
            escape(w.performance),
            "yes" if w.maintenance_mode else "no",
        )
    console.print(table)


kudos_app = typer.Typer(
    help="Show your kudos balance; 'transfer' gives kudos to another user.",
    invoke_without_command=True,
)


@kudos_app.callback()
def kudos(
    ctx: typer.Context,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = ANONYMOUS_API_KEY,
    as_json: JsonOption = False,
) -> None:
    """Show the account and kudos balance of your API key."""
    if ctx.invoked_subcommand is not None:
        return
    with exit_codes(), HordeClient(url, api_key) as client:
        user = client.find_user()
    if as_json:
        print_json(asdict(user))
        return
    table = Table("username", "kudos")
    table.add_row(escape(user.username), f"{user.kudos:g}")
    console.print(table)


@kudos_app.command("transfer")
def transfer(
    username: Annotated[str, typer.Argument(help="Who gets them, as name#id.", show_default=False)],
    amount: Annotated[int, typer.Argument(min=1, help="Whole kudos to give.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = ANONYMOUS_API_KEY,
    as_json: JsonOption = False,
) -> None:
    """Give some of your kudos to another user."""
    with exit_codes(), HordeClient(url, api_key) as client:
        moved = client.transfer(username, amount)
    if as_json:
        print_json({"username": username, "transferred": moved})
        return
    typer.echo(f"Transferred {moved} kudos to {username}.")


def register_client_commands(app: typer.Typer) -> None:
    """Add ``generate``, ``interrogate``, ``models``, ``workers`` and ``kudos`` to the ``openhorde`` command."""
    app.command("generate", rich_help_panel=HELP_PANEL)(generate)
    app.command("interrogate", rich_help_panel=HELP_PANEL)(interrogate)
    app.command("models", rich_help_panel=HELP_PANEL)(models)
    app.command("workers", rich_help_panel=HELP_PANEL)(workers)
    app.add_typer(kudos_app, name="kudos", rich_help_panel=HELP_PANEL)
