"""``openhorde admin``: accounts, kudos, tiers and the model catalogue, worked on the server's database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.cli.options import DataDirOption, build_settings
from openhorde.cli.tiers import register_tier_commands
from openhorde.domain import accounts, audit, catalogue, roles
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos import ledger, transfers
from openhorde.errors import HordeError

admin = typer.Typer(
    help="Manage accounts, kudos and the model catalogue (works on the server's database).",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

T = TypeVar("T")


def _run(data_dir: Path | None, action: Callable[[AsyncSession, HordeContext], Awaitable[T]]) -> T:
    from openhorde.api.app import prepare_storage

    async def main() -> T:
        db, ctx = await prepare_storage(build_settings(data_dir=data_dir))
        try:
            async with db.unit_of_work() as session:
                return await action(session, ctx)
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

    async def action(session: AsyncSession, ctx: HordeContext) -> accounts.NewAccount:
        created = await accounts.create_user(session, ctx.secret, username)
        for name in role or []:
            _set_role(created.user, name, True)
        if kudos:
            await transfers.grant(session, created.user, kudos, memo="granted at creation")
        return created

    created = _run(data_dir, action)
    console.print(f"Created [bold]{created.user.display_name}[/bold]; API key: [bold]{created.api_key}[/bold]")


def _set_role(user: Any, name: str, value: bool) -> None:
    attribute = f"is_{name}"
    if name not in ("admin", "moderator", *roles.MODERATOR_FLAGS, "deleted") or not hasattr(user, attribute):
        raise typer.BadParameter(f"Unknown role '{name}'.")
    setattr(user, attribute, value)


@admin.command("grant")
def grant(user_id: int, kudos: float, data_dir: DataDirOption = None, memo: str = "admin grant") -> None:
    """Add kudos to a user (negative to take them away)."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> float:
        user = await accounts.get_user(session, user_id)
        await transfers.grant(session, user, kudos, memo=memo)
        await audit.record(session, None, "user.grant", "user", user_id, {"kudos": kudos, "via": "cli"})
        await session.refresh(user)
        return user.kudos_cents / 100

    console.print(f"User {user_id} now has {_run(data_dir, action)} kudos.")


@admin.command("set-role")
def set_role(
    user_id: int,
    role: str,
    data_dir: DataDirOption = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the role instead.")] = False,
) -> None:
    """Give a user a role (admin, moderator, trusted, flagged, customizer, vpn, service, education, special)."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> None:
        _set_role(await accounts.get_user(session, user_id), role, not off)
        await audit.record(session, None, "user.set_role", "user", user_id, {role: not off, "via": "cli"})

    _run(data_dir, action)
    console.print(f"User {user_id}: {role} {'removed' if off else 'set'}.")


@admin.command("set-concurrency")
def set_concurrency(user_id: int, images: int, data_dir: DataDirOption = None) -> None:
    """Set how many images a user may have queued at once."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> None:
        (await accounts.get_user(session, user_id)).concurrency = images

    _run(data_dir, action)
    console.print(f"User {user_id} may now queue {images} images.")


@admin.command("reset-key")
def reset_key(user_id: int, data_dir: DataDirOption = None) -> None:
    """Give a user a new API key (the old one stops working) and print it."""

    async def action(session: AsyncSession, ctx: HordeContext) -> str:
        return await accounts.reset_api_key(session, ctx.secret, await accounts.get_user(session, user_id))

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

    async def action(session: AsyncSession, _ctx: HordeContext) -> None:
        await catalogue.add_model(session, entry)

    _run(data_dir, action)
    console.print(f"Model '{name}' is in the catalogue.")


@admin.command("remove-model")
def remove_model(name: str, data_dir: DataDirOption = None) -> None:
    """Remove a model from the catalogue (workers serving it keep it until they change their list)."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> None:
        await catalogue.remove_model(session, name)

    _run(data_dir, action)
    console.print(f"Model '{name}' removed from the catalogue.")


@admin.command("models")
def list_models(data_dir: DataDirOption = None) -> None:
    """List the model catalogue."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> list[tuple[str, str, bool, bool]]:
        return [(m.name, m.baseline, m.inpainting, m.nsfw) for m in await catalogue.list_models(session)]

    table = Table("name", "baseline", "inpainting", "nsfw")
    for name, baseline, inpainting, nsfw in _run(data_dir, action):
        table.add_row(name, baseline, str(inpainting), str(nsfw))
    console.print(table)


@admin.command("check-ledger")
def check_ledger(data_dir: DataDirOption = None) -> None:
    """Re-derive every balance from the kudos ledger and report any difference."""

    async def action(session: AsyncSession, _ctx: HordeContext) -> ledger.LedgerReport:
        return await ledger.check_ledger(session)

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
