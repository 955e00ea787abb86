"""Changing accounts: what an admin, a moderator or the user themself may set (``PUT /users/{id}``).

- admin: kudos (added to the balance), moderator;
- moderator: concurrency, worker_invited, admin_comment and the flags trusted, flagged,
  customizer, vpn, service, education, special;
- the user, or a moderator: public_workers, username, contact.

Admins may change anyone. A moderator who is not an admin may change no field of an admin's account, and none
of the moderator fields of their own (their trust, flags, concurrency...: nobody raises themselves); their own
username, contact and public_workers stay theirs. Every change is audited, a user's changes to their own
account included.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from openhorde.domain import accounts, audit
from openhorde.domain.accounts import is_anonymous, validate_username
from openhorde.domain.kudos import escrow, transfers
from openhorde.domain.moderation import role_effects
from openhorde.errors import (
    AnonForbiddenUserMod,
    NotAdmin,
    NotModerator,
    NotOwner,
    NoUserModSelected,
    OwnPrivilegesForbidden,
)
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.store import Store

MODERATOR_FLAGS = ("trusted", "flagged", "customizer", "vpn", "service", "education", "special")
MODERATOR_FIELDS = frozenset({"concurrency", "worker_invited", "admin_comment", *MODERATOR_FLAGS})
OWNER_FIELDS = frozenset({"public_workers", "username", "contact"})


@dataclass
class UserChanges:
    """Requested changes; ``None`` means "leave as is"."""

    kudos: float | None = None
    moderator: bool | None = None
    concurrency: int | None = None
    worker_invited: int | None = None
    trusted: bool | None = None
    flagged: bool | None = None
    customizer: bool | None = None
    vpn: bool | None = None
    service: bool | None = None
    education: bool | None = None
    special: bool | None = None
    admin_comment: str | None = None
    public_workers: bool | None = None
    username: str | None = None
    contact: str | None = None

    def requested(self) -> dict[str, object]:
        """The fields that were given."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _check_permissions(actor: Account, target: Account, changes: dict[str, object]) -> None:
    is_admin = actor.is_admin
    is_mod = is_admin or actor.is_moderator
    if ("kudos" in changes or "moderator" in changes) and not is_admin:
        raise NotAdmin("Only admins can change kudos or moderator status.")
    if MODERATOR_FIELDS & changes.keys() and not is_mod:
        raise NotModerator("Only moderators can change this.")
    if OWNER_FIELDS & changes.keys() and not (is_mod or actor.id == target.id):
        raise NotOwner("Only the user or a moderator can change this.")
    if is_admin:
        return
    # A moderator's powers stop at admins, and at their own privileges: neither may be raised from below.
    if target.is_admin:
        raise NotAdmin("Only an admin can change an admin's account.")
    own_privileges = sorted(MODERATOR_FIELDS & changes.keys()) if actor.id == target.id else []
    if own_privileges:
        raise OwnPrivilegesForbidden(
            f"Moderators cannot change their own {', '.join(own_privileges)}; ask an admin.",
        )


def _columns_of(changes: UserChanges) -> dict[str, object]:
    """The account columns the requested changes set (kudos aside: a grant goes through the ledger)."""
    columns: dict[str, object] = {}
    for name in ("concurrency", "worker_invited", "admin_comment", "public_workers", "contact"):
        if getattr(changes, name) is not None:
            columns[name] = getattr(changes, name)
    if changes.moderator is not None:
        columns["is_moderator"] = changes.moderator
    for flag in MODERATOR_FLAGS:
        if getattr(changes, flag) is not None:
            columns[f"is_{flag}"] = getattr(changes, flag)
    if changes.username is not None:
        columns["username"] = validate_username(changes.username)
    return columns


def _answer_of(changes: UserChanges, target: Account) -> dict[str, object]:
    """The AI Horde's ``ModifyUser`` fields for the changes made, from the account as it now is."""
    answer: dict[str, object] = {
        name: getattr(changes, name)
        for name in ("moderator", "worker_invited", "admin_comment", "public_workers", "contact", *MODERATOR_FLAGS)
        if getattr(changes, name) is not None
    }
    if changes.concurrency is not None or changes.education:
        answer["concurrency"] = target.concurrency
    if changes.username is not None:
        answer["username"] = target.display_name
    return answer


async def update_user(store: Store, actor: Account, target: Account, changes: UserChanges) -> dict[str, object]:
    """Apply the changes ``actor`` may make to ``target``; returns the AI Horde's ``ModifyUser`` fields."""
    requested = changes.requested()
    if not requested:
        raise NoUserModSelected("No user modification selected!")
    if is_anonymous(target):
        raise AnonForbiddenUserMod("The anonymous user cannot be changed.")
    _check_permissions(actor, target, requested)
    answer: dict[str, object] = {}
    if changes.kudos is not None:
        await transfers.grant(store, target, changes.kudos, memo=f"admin {actor.id}")
        answer["new_kudos"] = await store.accounts.balance(target.id) / 100
    columns = _columns_of(changes)
    if changes.education and changes.concurrency is None:
        columns["concurrency"] = role_effects.EDUCATION_CONCURRENCY  # the reference's education concurrency
    if columns:
        target = await store.accounts.change(target.id, **columns)
        accounts.changed(store, target.id)
    answer.update(_answer_of(changes, target))
    if (changes.trusted or changes.moderator) and escrow.is_trusted(target):
        await escrow.release(store, target.id)  # trusted now: the rewards held in escrow are paid out
    # One's own changes too, so the log holds every change of every account, whoever made it.
    await audit.record(store, actor, "user.modify", "user", target.id, dict(requested))
    return answer


SETTABLE_ROLES = ("admin", "moderator", *MODERATOR_FLAGS, "deleted")
"""Roles the operator's command line may set or remove (``openhorde admin set-role``)."""


async def set_role(store: Store, user_id: int, role: str, value: bool) -> Account:
    """The operator gives or takes a role (``SETTABLE_ROLES``); audited, and every process forgets the account."""
    if role not in SETTABLE_ROLES:
        raise NoUserModSelected(f"Unknown role '{role}'; roles are {', '.join(SETTABLE_ROLES)}.")
    target = await accounts.get_user(store, user_id)
    changed = await store.accounts.change(target.id, **{f"is_{role}": value})
    accounts.changed(store, user_id)
    await audit.record(store, None, "user.set_role", "user", user_id, {role: value, "via": "cli"})
    return changed


async def set_concurrency(store: Store, user_id: int, images: int) -> Account:
    """The operator sets how many images a user may have queued at once; audited."""
    target = await accounts.get_user(store, user_id)
    changed = await store.accounts.change(target.id, concurrency=images)
    accounts.changed(store, user_id)
    await audit.record(store, None, "user.set_concurrency", "user", user_id, {"concurrency": images, "via": "cli"})
    return changed
