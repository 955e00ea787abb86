"""Horde modes (``/status/modes``): maintenance, invite-only and raid, read through a short per-process cache.

- maintenance (admins set it): ``POST /generate/async`` is refused with 503 ``MaintenanceMode``; requests
  already queued are still served (the swagger's description; the reference also zeroes the queue).
- invite-only (moderators): a new worker name is accepted only while the owner has fewer workers than
  their ``worker_invited`` quota, else 403 ``WorkerInviteOnly`` (the reference's rule).
- raid (moderators): shown only to moderators; the ``NoAvailableWorker`` warning is withheld, as the
  reference does, so attackers learn less.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from openhorde.domain import audit
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation.cache import Modes
from openhorde.errors import MaintenanceMode, NotAdmin, NotModerator, NoValidActions, WorkerInviteOnly
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.store import Store


@dataclass(frozen=True)
class ModeChanges:
    """Requested changes; ``None`` means "leave as is"."""

    maintenance: bool | None = None
    invite_only: bool | None = None
    raid: bool | None = None


def is_moderator(user: Account | None) -> bool:
    """Whether this account may use moderator powers (admins are moderators too)."""
    return user is not None and (user.is_admin or user.is_moderator)


async def current(store: Store, ctx: HordeContext, now: float | None = None) -> Modes:
    """The modes, at most ``modes_cache_seconds`` old."""
    moment = now or time.time()
    cache = ctx.moderation
    if cache.modes is not None and moment - cache.modes_read_at < ctx.settings.moderation.modes_cache_seconds:
        return cache.modes
    modes = await store.moderation.modes()
    cache.modes, cache.modes_read_at = modes, moment
    return modes


async def change(
    store: Store, ctx: HordeContext, actor: Account, changes: ModeChanges, now: float | None = None
) -> Modes:
    """Apply what ``actor`` may change (maintenance: admins; invite-only and raid: moderators) and log it."""
    moment = now or time.time()
    requested = {k: v for k, v in vars(changes).items() if v is not None}
    if not requested:
        raise NoValidActions("No mode change selected.")
    if "maintenance" in requested and not actor.is_admin:
        raise NotAdmin("Only admins can change maintenance mode.")
    if not is_moderator(actor):
        raise NotModerator("Only moderators can change the horde modes.")
    modes = await store.moderation.change_modes(changes.maintenance, changes.invite_only, changes.raid, moment)
    await audit.record(store, actor, "modes.change", "horde", "modes", requested, now=moment)
    ctx.moderation.forget_modes()
    return modes


async def refuse_if_maintenance(store: Store, ctx: HordeContext, now: float | None = None) -> Modes:
    """The modes, or ``MaintenanceMode`` when the horde takes no new requests."""
    modes = await current(store, ctx, now)
    if modes.maintenance:
        raise MaintenanceMode(retry_after=60)
    return modes


async def check_new_worker(store: Store, ctx: HordeContext, user: Account) -> None:
    """In invite-only mode a new worker needs a free ``worker_invited`` slot (the reference's rule)."""
    if not (await current(store, ctx)).invite_only:
        return
    await store.accounts.lock([user.id])  # parallel first pops count one after another
    count = await store.moderation.worker_count(user.id)
    if count >= user.worker_invited:
        raise WorkerInviteOnly(
            f"This horde only accepts invited workers; your account may run {user.worker_invited} "
            f"and has {count}. Ask a moderator for an invitation."
        )
