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

from openhorde.config import Settings
from openhorde.domain import accounts, audit
from openhorde.domain.accounts import Account
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.storage.store import Store


def is_trusted(user: Account) -> bool:
    """Whether a user's rewards are paid in full: trusted, moderator or admin."""
    return user.is_trusted or user.is_moderator or user.is_admin


def held_part(amount_cents: int, share: float) -> int:
    """The hundredths of a reward of ``amount_cents`` held back at ``share`` (never more than the reward)."""
    return max(0, min(amount_cents, round(amount_cents * share)))


def qualifies_for_trust(settings: Settings, created_at: float, earned_cents: int, images: int, now: float) -> bool:
    """Whether an untrusted owner (account created at ``created_at``) who earned ``earned_cents`` over ``images``
    images is now trusted automatically."""
    if settings.economy.trust_after_kudos is None:
        return False
    return (
        earned_cents >= ledger.kudos_to_cents(settings.economy.trust_after_kudos)
        and images >= settings.economy.trust_after_images
        and now - created_at >= settings.economy.trust_min_account_age_seconds
    )


async def owner_reward(
    store: Store,
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
    owner = await store.accounts.get(owner_id)
    if owner is None or is_trusted(owner) or amount_cents <= 0:
        return [Posting(owner_id, amount_cents)]
    held = held_part(amount_cents, share)
    so_far = await store.ledger.escrow_of(owner_id)
    earned, delivered = so_far.earned_cents + amount_cents, so_far.images + images
    if qualifies_for_trust(settings, owner.created_at, earned, delivered, moment):
        await trust_automatically(store, owner.id, earned, delivered, moment)
        return [Posting(owner_id, amount_cents)]
    await store.ledger.add_to_escrow(owner_id, held, amount_cents, images)
    return [Posting(owner_id, amount_cents - held), Posting(SystemAccount.ESCROW, held)]


async def trust_automatically(store: Store, user_id: int, earned_cents: int, images: int, now: float) -> None:
    """Make a user trusted by the server's own rule, release the escrow and write it to the audit log."""
    await store.accounts.change(user_id, is_trusted=True)
    accounts.changed(store, user_id)
    released = await release(store, user_id, now)
    await audit.record(
        store,
        None,
        "user.auto_trust",
        "user",
        user_id,
        {"earned": ledger.cents_to_kudos(earned_cents), "images": images, "released": ledger.cents_to_kudos(released)},
        now=now,
    )


async def release(store: Store, user_id: int, now: float | None = None) -> int:
    """Pay a user everything held in escrow; returns the hundredths released (0 if none, or another release won)."""
    escrow = await store.ledger.escrow_of(user_id)
    held, releases = escrow.held_cents, escrow.releases
    if held <= 0 or not await store.ledger.claim_release(user_id, held, releases):
        return 0
    await ledger.record(
        store,
        TransactionKind.ESCROW_RELEASE,
        f"{user_id}:{releases + 1}",
        [Posting(SystemAccount.ESCROW, -held), Posting(user_id, held)],
        memo="escrow released: the account is trusted",
        now=now,
    )
    return held


async def evaluating_kudos(store: Store, user_id: int) -> float:
    """Kudos held in a user's escrow (``evaluating_kudos`` on the wire)."""
    return ledger.cents_to_kudos((await store.ledger.escrow_of(user_id)).held_cents)
