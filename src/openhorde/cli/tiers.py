"""``openhorde admin supporter`` and ``openhorde admin credits``: the paid tiers from the command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from openhorde.domain import accounts
from openhorde.domain.billing import tiers
from openhorde.domain.context import HordeContext
from openhorde.storage.store import Store

Action = Callable[[Store, HordeContext], Awaitable[Any]]
Runner = Callable[[Path | None, Action], Any]
DataDir = Annotated[
    Path | None,
    typer.Option(help="Data directory: database, images, secret (env OPENHORDE_DATA_DIR; default ./horde-data)."),
]
console = Console()


def _describe(info: tiers.TierInfo) -> str:
    if info.tier == tiers.Tier.SUPPORTER and info.supporter_until:
        return f"supporter until {datetime.fromtimestamp(info.supporter_until, UTC):%Y-%m-%d %H:%M} UTC"
    return info.tier.value


def register_tier_commands(admin: typer.Typer, run: Runner) -> None:
    """Add the tier commands to ``openhorde admin``; ``run`` opens the database and runs one action."""

    @admin.command("supporter")
    def supporter(
        user_id: int,
        months: Annotated[int, typer.Option(min=1, max=120, help="Months of Supporter tier to add.")] = 1,
        off: Annotated[bool, typer.Option("--off", help="End the Supporter tier now instead.")] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Make a user a supporter for N more months (a priority boost and a monthly grant), or end it."""

        async def action(store: Store, ctx: HordeContext) -> tiers.TierInfo:
            user = await accounts.get_user(store, user_id)
            if off:
                return await tiers.revoke_supporter(store, None, user)
            return await tiers.grant_supporter(store, ctx.settings, None, user, months)

        console.print(f"User {user_id}: {_describe(run(data_dir, action))}.")

    @admin.command("credits")
    def credits(
        user_id: int,
        kudos: float,
        reference: Annotated[str, typer.Option(help="The payment's reference; a repeat with it changes nothing.")],
        data_dir: DataDir = None,
    ) -> None:
        """Record kudos a user bought outside Stripe (once per reference)."""

        async def action(store: Store, _ctx: HordeContext) -> bool:
            return await tiers.grant_credits(store, None, await accounts.get_user(store, user_id), kudos, reference)

        recorded = run(data_dir, action)
        console.print(
            f"User {user_id}: {kudos} kudos " + ("recorded." if recorded else f"already recorded as {reference}.")
        )
