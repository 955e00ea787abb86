"""What ``/users``, ``/users/{id}`` and ``/find_user`` show about an account, gathered in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from openhorde.domain import workers
from openhorde.domain.billing import tiers
from openhorde.domain.kudos import escrow
from openhorde.storage.repositories.accounts import Account, AccountTotals
from openhorde.storage.store import Store


@dataclass(frozen=True)
class KudosBreakdown:
    """Where an account's kudos came from, in kudos (the AI Horde's ``kudos_details``)."""

    accumulated: float
    gifted: float
    received: float
    admin: float
    awarded: float
    recurring: float
    styled: float = 0.0
    """Earned by the account's styles being used by others."""


@dataclass(frozen=True)
class OwnStyle:
    """One of an account's styles or collections as its details list it: id, ``user#id::style::name``, type."""

    id: str
    name: str
    type: str


@dataclass(frozen=True)
class Profile:
    """An account with its figures; ``tier`` and ``supporter_until`` only for privileged viewers."""

    account: Account
    totals: AccountTotals
    evaluating_kudos: float
    kudos: KudosBreakdown
    worker_ids: list[str]
    styles: list[OwnStyle] = field(default_factory=list)
    """Public ones, or all for a privileged viewer."""
    tier: str | None = None
    supporter_until: float | None = None


def _breakdown(by_kind: dict[str, int]) -> KudosBreakdown:
    return KudosBreakdown(
        accumulated=(by_kind.get("+generation", 0) + by_kind.get("-generation", 0)) / 100,
        gifted=-by_kind.get("-transfer", 0) / 100,
        received=by_kind.get("+transfer", 0) / 100,
        admin=(by_kind.get("+admin", 0) + by_kind.get("-admin", 0)) / 100,
        awarded=by_kind.get("+award", 0) / 100,
        recurring=by_kind.get("+supporter", 0) / 100,  # the Supporter tier's monthly grants
        styled=by_kind.get("+style", 0) / 100,
    )


async def profile(store: Store, account: Account, privileged: bool) -> Profile:
    """``account`` with its balance, usage, kudos breakdown, escrow and workers (and tier when ``privileged``)."""
    found = Profile(
        account=account,
        totals=await store.accounts.totals(account.id),
        evaluating_kudos=await escrow.evaluating_kudos(store, account.id),
        kudos=_breakdown(await store.ledger.totals_by_kind(account.id)),
        worker_ids=await workers.worker_ids_of(store, account.id),
        styles=[
            OwnStyle(style_id, f"{account.display_name}::style::{name}", style_type)
            for style_id, name, style_type in await store.styles.names_of(account.id, public_only=not privileged)
        ],
    )
    if not privileged:
        return found
    info = await tiers.tier_of(store, account)
    return Profile(**{**found.__dict__, "tier": info.tier.value, "supporter_until": info.supporter_until})
