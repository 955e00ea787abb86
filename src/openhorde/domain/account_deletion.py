"""Deleting an account (``DELETE /users/{id}``), in the AI Horde's two steps.

The first call, by the user or a moderator, marks the account deleted: its key stops working and it leaves the
user list, but nothing is lost, and the operator can bring it back (``openhorde admin set-role ID deleted
false``). A moderator's second call wipes it, once it has been inactive for 30 days: its name, contact and
comment are erased and its key replaced by one nobody holds. The AI Horde removes the row; we keep it (and so its
ledger postings, its requests' and workers' history), because every kudo that ever moved must stay accounted
for. Moderators' and admins' accounts cannot be deleted until that role is taken away.
"""

from __future__ import annotations

import secrets
import time
from enum import StrEnum

from openhorde.domain import accounts, audit
from openhorde.domain.accounts import hash_api_key, is_anonymous
from openhorde.errors import AnonForbiddenUserMod, CannotDeleteMod, CannotWipeActiveUser, NotUserOrMod
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.store import Store

WIPE_AFTER_INACTIVE_SECONDS = 30 * 86_400
"""How long a deleted account must have been inactive before a moderator may wipe it (30 days)."""
WIPED_USERNAME = "deleted"


class Deletion(StrEnum):
    """What a ``DELETE /users/{id}`` did."""

    DELETED = "deleted"
    WIPED = "wiped"


async def delete_user(store: Store, secret: str, actor: Account, target: Account, now: float | None = None) -> Deletion:
    """Mark ``target`` deleted or, if it already is and ``actor`` is a moderator, wipe it (see the module)."""
    moment = now or time.time()
    is_mod = actor.is_admin or actor.is_moderator
    if is_anonymous(target):
        raise AnonForbiddenUserMod("The anonymous user cannot be deleted.")
    if actor.id != target.id and not is_mod:
        raise NotUserOrMod()
    if target.is_moderator or target.is_admin:
        raise CannotDeleteMod()
    if not target.is_deleted:
        await store.accounts.change(target.id, is_deleted=True)
        accounts.changed(store, target.id)
        await audit.record(store, actor, "user.delete", "user", target.id, now=moment)
        return Deletion.DELETED
    if not is_mod:  # a deleted account's own key no longer works, so this is someone else's
        raise NotUserOrMod()
    last_active = await store.accounts.last_active_at(target.id) or 0.0
    if moment - last_active < WIPE_AFTER_INACTIVE_SECONDS:
        raise CannotWipeActiveUser()
    unheld_key = hash_api_key(secret, secrets.token_urlsafe(32))
    await store.accounts.change(
        target.id,
        username=WIPED_USERNAME,
        contact=None,
        admin_comment=None,
        public_workers=False,
        api_key_hash=unheld_key,
    )
    accounts.changed(store, target.id)
    await audit.record(store, actor, "user.wipe", "user", target.id, now=moment)
    return Deletion.WIPED
