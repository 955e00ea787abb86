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

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import audit
from openhorde.domain.accounts import is_anonymous, validate_username
from openhorde.domain.kudos import escrow, transfers
from openhorde.domain.moderation import role_effects
from openhorde.errors import AnonForbidden, NotAdmin, NotModerator, NotOwner, NoValidActions, OwnPrivilegesForbidden
from openhorde.storage.tables import User

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


def _check_permissions(actor: User, target: User, changes: dict[str, object]) -> None:
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


async def update_user(session: AsyncSession, actor: User, target: User, changes: UserChanges) -> dict[str, object]:
    """Apply the changes ``actor`` may make to ``target``; returns the AI Horde's ``ModifyUser`` fields."""
    requested = changes.requested()
    if not requested:
        raise NoValidActions("No user modification selected!", rc="NoUserModSelected")
    if is_anonymous(target):
        raise AnonForbidden("The anonymous user cannot be changed.", rc="AnonForbiddenUserMod")
    _check_permissions(actor, target, requested)
    answer: dict[str, object] = {}
    if changes.kudos is not None:
        await transfers.grant(session, target, changes.kudos, memo=f"admin {actor.id}")
        await session.refresh(target)
        answer["new_kudos"] = target.kudos_cents / 100
    if changes.moderator is not None:
        target.is_moderator = changes.moderator
        answer["moderator"] = changes.moderator
    if changes.concurrency is not None:
        target.concurrency = changes.concurrency
        answer["concurrency"] = changes.concurrency
    if changes.worker_invited is not None:
        target.worker_invited = changes.worker_invited
        answer["worker_invited"] = changes.worker_invited
    for flag in MODERATOR_FLAGS:
        value = getattr(changes, flag)
        if value is not None:
            setattr(target, f"is_{flag}", value)
            answer[flag] = value
    if changes.education and changes.concurrency is None:
        target.concurrency = role_effects.EDUCATION_CONCURRENCY  # the reference's education concurrency
        answer["concurrency"] = target.concurrency
    if (changes.trusted or changes.moderator) and escrow.is_trusted(target):
        await escrow.release(session, target.id)  # trusted now: the rewards held in escrow are paid out
    if changes.admin_comment is not None:
        target.admin_comment = changes.admin_comment
        answer["admin_comment"] = changes.admin_comment
    if changes.public_workers is not None:
        target.public_workers = changes.public_workers
        answer["public_workers"] = changes.public_workers
    if changes.username is not None:
        target.username = validate_username(changes.username)
        answer["username"] = target.display_name
    if changes.contact is not None:
        target.contact = changes.contact
        answer["contact"] = changes.contact
    # One's own changes too, so the log holds every change of every account, whoever made it.
    await audit.record(session, actor, "user.modify", "user", target.id, dict(requested))
    await session.flush()
    return answer
