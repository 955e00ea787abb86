"""Escrow: part of an untrusted worker owner's rewards is held until the account is trusted.

The AI Horde calls the held kudos ``evaluating_kudos``. Held kudos sit on the ledger's
``escrow`` system account, so every reward stays one balanced transaction (mint → owner and
escrow); ``kudos_escrow`` says whose they are. A release is one transaction escrow → owner for
everything the owner has held, recorded under the release's sequence number, so it happens once
however many moderators or rewards trigger it at the same moment.

An owner becomes trusted automatically once the account is old enough and has earned enough
while untrusted (settings ``trust_after_kudos``, ``trust_after_images``,
``trust_min_account_age_seconds``), or when a moderator sets ``trusted``; moderators and admins
count as trusted.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.config import Settings
from openhorde.domain import audit
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.storage import escrow_queries
from openhorde.storage.tables import User


def is_trusted(user: User) -> bool:
    """Whether a user's rewards are paid in full: trusted, moderator or admin."""
    return user.is_trusted or user.is_moderator or user.is_admin


def held_part(amount_cents: int, share: float) -> int:
    """The hundredths of a reward of ``amount_cents`` held back at ``share`` (never more than the reward)."""
    return max(0, min(amount_cents, round(amount_cents * share)))


def qualifies_for_trust(settings: Settings, user: User, earned_cents: int, images: int, now: float) -> bool:
    """Whether an untrusted owner who earned ``earned_cents`` over ``images`` images is now trusted automatically."""
    if settings.trust_after_kudos is None:
        return False
    return (
        earned_cents >= ledger.kudos_to_cents(settings.trust_after_kudos)
        and images >= settings.trust_after_images
        and now - user.created_at >= settings.trust_min_account_age_seconds
    )


async def owner_reward(
    session: AsyncSession,
    settings: Settings,
    owner_id: int,
    amount_cents: int,
    share: float,
    images: int,
    now: float | None = None,
) -> list[Posting]:
    """The postings paying ``amount_cents`` of reward to a worker owner: all to the balance if trusted, else
    ``share`` of it to escrow. Records the earnings; an owner whom they qualify for trust is trusted first (with
    the escrow released), and this reward is then paid in full. The caller records the postings with a
    matching ``mint`` leg.
    """
    moment = now or time.time()
    owner = await session.get(User, owner_id)
    if owner is None or is_trusted(owner) or amount_cents <= 0:
        return [Posting(owner_id, amount_cents)]
    held = held_part(amount_cents, share)
    _, earned, delivered, _ = await escrow_queries.get(session, owner_id)
    if qualifies_for_trust(settings, owner, earned + amount_cents, delivered + images, moment):
        await trust_automatically(session, owner, earned + amount_cents, delivered + images, moment)
        return [Posting(owner_id, amount_cents)]
    await escrow_queries.add(session, owner_id, held, amount_cents, images)
    return [Posting(owner_id, amount_cents - held), Posting(SystemAccount.ESCROW, held)]


async def trust_automatically(session: AsyncSession, user: User, earned_cents: int, images: int, now: float) -> None:
    """Make ``user`` trusted by the server's own rule, release the escrow and write it to the audit log."""
    user.is_trusted = True
    released = await release(session, user.id, now)
    await audit.record(
        session,
        None,
        "user.auto_trust",
        "user",
        user.id,
        {"earned": ledger.cents_to_kudos(earned_cents), "images": images, "released": ledger.cents_to_kudos(released)},
        now=now,
    )


async def release(session: AsyncSession, user_id: int, now: float | None = None) -> int:
    """Pay a user everything held in escrow; returns the hundredths released (0 if none, or another release won)."""
    held, _, _, releases = await escrow_queries.get(session, user_id)
    if held <= 0 or not await escrow_queries.claim_release(session, user_id, held, releases):
        return 0
    await ledger.record(
        session,
        TransactionKind.ESCROW_RELEASE,
        f"{user_id}:{releases + 1}",
        [Posting(SystemAccount.ESCROW, -held), Posting(user_id, held)],
        memo="escrow released: the account is trusted",
        now=now,
    )
    return held


async def evaluating_kudos(session: AsyncSession, user_id: int) -> float:
    """Kudos held in a user's escrow (``evaluating_kudos`` on the wire)."""
    held, _, _, _ = await escrow_queries.get(session, user_id)
    return ledger.cents_to_kudos(held)
