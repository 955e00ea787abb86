"""``openhorde admin``: accounts, kudos, tiers and the model catalogue, worked on the server's database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from openhorde import model_reference
from openhorde.cli.options import DataDirOption, build_settings
from openhorde.cli.tiers import register_tier_commands
from openhorde.domain import accounts, audit, catalogue, roles
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos import ledger, transfers
from openhorde.errors import HordeError
from openhorde.model_reference import ReferenceModel
from openhorde.storage.store import Store

admin = typer.Typer(
    help="Manage accounts, kudos and the model catalogue (works on the server's database).",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

T = TypeVar("T")
REFERENCE_TIMEOUT_SECONDS = 60.0
"""The longest wait for a model reference given as a URL."""


def _run(data_dir: Path | None, action: Callable[[Store, HordeContext], Awaitable[T]]) -> T:
    from openhorde.api.app import prepare_storage

    async def main() -> T:
        db, ctx = await prepare_storage(build_settings(data_dir=data_dir))
        try:
            async with db.store() as store:
                return await action(store, ctx)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except HordeError as exc:  # an operator's mistake (unknown user, bad name): say so, no traceback
        errors.print(f"[red]Error:[/red] {exc.message}")
        raise typer.Exit(code=1) from exc


@admin.command("create-user")
def create_user(
    username: str,
    data_dir: DataDirOption = None,
    kudos: Annotated[float, typer.Option(help="Kudos to grant.")] = 0,
    role: Annotated[
        list[str] | None, typer.Option(help="admin, moderator, trusted, customizer, ... (repeatable)")
    ] = None,
) -> None:
    """Create a user and print its API key (shown only once)."""

    for name in role or []:
        _check_role(name)

    async def action(store: Store, ctx: HordeContext) -> accounts.NewAccount:
        created = await accounts.create_user(store, ctx.secret, username)
        for name in role or []:
            await roles.set_role(store, created.user.id, name, True)
        if kudos:
            await transfers.grant(store, created.user, kudos, memo="granted at creation")
        return created

    created = _run(data_dir, action)
    console.print(f"Created [bold]{created.user.display_name}[/bold]; API key: [bold]{created.api_key}[/bold]")


def _check_role(name: str) -> None:
    if name not in roles.SETTABLE_ROLES:
        raise typer.BadParameter(f"Unknown role '{name}'.")


@admin.command("grant")
def grant(user_id: int, kudos: float, data_dir: DataDirOption = None, memo: str = "admin grant") -> None:
    """Add kudos to a user (negative to take them away)."""

    async def action(store: Store, _ctx: HordeContext) -> float:
        user = await accounts.get_user(store, user_id)
        await transfers.grant(store, user, kudos, memo=memo)
        await audit.record(store, None, "user.grant", "user", user_id, {"kudos": kudos, "via": "cli"})
        return await store.accounts.balance(user_id) / 100

    console.print(f"User {user_id} now has {_run(data_dir, action)} kudos.")


@admin.command("set-role")
def set_role(
    user_id: int,
    role: str,
    data_dir: DataDirOption = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the role instead.")] = False,
) -> None:
    """Give a user a role (admin, moderator, trusted, flagged, customizer, vpn, service, education, special)."""

    _check_role(role)

    async def action(store: Store, _ctx: HordeContext) -> None:
        await roles.set_role(store, user_id, role, not off)

    _run(data_dir, action)
    console.print(f"User {user_id}: {role} {'removed' if off else 'set'}.")


@admin.command("set-concurrency")
def set_concurrency(user_id: int, images: int, data_dir: DataDirOption = None) -> None:
    """Set how many images a user may have queued at once."""

    async def action(store: Store, _ctx: HordeContext) -> None:
        await roles.set_concurrency(store, user_id, images)

    _run(data_dir, action)
    console.print(f"User {user_id} may now queue {images} images.")


@admin.command("reset-key")
def reset_key(user_id: int, data_dir: DataDirOption = None) -> None:
    """Give a user a new API key (the old one stops working) and print it."""

    async def action(store: Store, ctx: HordeContext) -> str:
        return await accounts.reset_api_key(store, ctx.secret, await accounts.get_user(store, user_id))

    console.print(f"New API key for user {user_id}: [bold]{_run(data_dir, action)}[/bold]")


@admin.command("add-model")
def add_model(
    name: str,
    baseline: Annotated[
        str, typer.Option(help="e.g. 'stable diffusion 1', 'stable_diffusion_xl'")
    ] = "stable diffusion 1",
    inpainting: bool = False,
    nsfw: bool = False,
    description: str = "",
    data_dir: DataDirOption = None,
) -> None:
    """Add a model to the catalogue (or change one)."""
    entry = catalogue.ModelEntry(
        name=name, baseline=baseline, inpainting=inpainting, nsfw=nsfw, description=description
    )

    async def action(store: Store, _ctx: HordeContext) -> None:
        await catalogue.add_model(store, entry)

    _run(data_dir, action)
    console.print(f"Model '{name}' is in the catalogue.")


@admin.command("import-models")
def import_models(
    source: Annotated[
        str, typer.Argument(help="An AI Horde model reference file (stable_diffusion.json): path or URL.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Fill the catalogue from an AI Horde image model reference (names, baselines, nsfw, descriptions, showcases)."""
    models = read_reference(source)

    async def action(store: Store, _ctx: HordeContext) -> catalogue.ImportReport:
        report = await catalogue.import_models(store, models)
        await audit.record(
            store, None, "catalogue.import", "catalogue", 0, {"source": source, "models": len(report.imported)}
        )
        return report

    report = _run(data_dir, action)
    for name, why in report.skipped.items():
        errors.print(f"Skipped '{name}': {why}", markup=False, highlight=False)
    console.print(f"Imported {len(report.imported)} models from {source}.", markup=False, highlight=False)


def read_reference(source: str) -> dict[str, ReferenceModel]:
    """The records of a model reference at a path or an http(s) URL; exits with a clear message if unreadable."""
    try:
        if source.startswith(("http://", "https://")):
            response = httpx.get(source, follow_redirects=True, timeout=REFERENCE_TIMEOUT_SECONDS)
            if response.status_code >= 400:
                raise OSError(f"HTTP {response.status_code}")
            text: bytes = response.content
        else:
            text = Path(source).expanduser().read_bytes()
        return model_reference.loads(text, source)
    except (OSError, httpx.HTTPError) as exc:
        errors.print(f"[red]Error:[/red] cannot read {source}: {exc}", highlight=False)
        raise typer.Exit(code=1) from exc
    except model_reference.ReferenceError as exc:
        errors.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=1) from exc


@admin.command("remove-model")
def remove_model(name: str, data_dir: DataDirOption = None) -> None:
    """Remove a model from the catalogue (workers serving it keep it until they change their list)."""

    async def action(store: Store, _ctx: HordeContext) -> None:
        await catalogue.remove_model(store, name)

    _run(data_dir, action)
    console.print(f"Model '{name}' removed from the catalogue.")


@admin.command("models")
def list_models(data_dir: DataDirOption = None) -> None:
    """List the model catalogue."""

    async def action(store: Store, _ctx: HordeContext) -> list[tuple[str, str, bool, bool]]:
        return [(m.name, m.baseline, m.inpainting, m.nsfw) for m in await catalogue.list_models(store)]

    table = Table("name", "baseline", "inpainting", "nsfw")
    for name, baseline, inpainting, nsfw in _run(data_dir, action):
        table.add_row(name, baseline, str(inpainting), str(nsfw))
    console.print(table)


@admin.command("check-ledger")
def check_ledger(data_dir: DataDirOption = None) -> None:
    """Re-derive every balance from the kudos ledger and report any difference."""

    async def action(store: Store, _ctx: HordeContext) -> ledger.LedgerReport:
        return await ledger.check_ledger(store)

    report = _run(data_dir, action)
    console.print_json(
        json.dumps(
            {
                "ok": report.ok,
                "sum_of_postings_cents": report.total_cents,
                "unbalanced_transactions": report.unbalanced_transaction_ids,
                "balance_mismatches": report.balance_mismatches,
                "escrow_held_cents": report.escrow_held_cents,
                "escrow_account_cents": report.escrow_account_cents,
            }
        )
    )
    if not report.ok:
        raise typer.Exit(code=1)


register_tier_commands(admin, _run)  # admin supporter / admin credits (part D1)
