"""The accounts repository: users, their API keys, roles and limits, and row locks on their balances.

An account is read as a frozen ``Account``: who someone is and what they may do. Its balance is not part of
it, because it changes with every image; ``balance`` and ``lock`` read it fresh when a decision needs it.
That makes an ``Account`` safe to keep in the per-process key cache (``domain/accounts.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import User

_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the domain sees it: identity, roles and limits (no balance: see ``AccountRepository``)."""

    id: int
    username: str
    created_at: float
    concurrency: int
    worker_invited: int
    public_workers: bool
    contact: str | None
    admin_comment: str | None
    is_admin: bool
    is_moderator: bool
    is_trusted: bool
    is_flagged: bool
    is_customizer: bool
    is_vpn: bool
    is_service: bool
    is_education: bool
    is_special: bool
    is_deleted: bool

    @property
    def display_name(self) -> str:
        """The public ``name#id`` form."""
        return f"{self.username}#{self.id}"


@dataclass(frozen=True, slots=True)
class AccountTotals:
    """An account's balance and usage figures, read fresh (they change with every image)."""

    kudos_cents: int
    usage_megapixelsteps: float
    usage_requests: int
    contribution_megapixelsteps: float
    contribution_fulfillments: int


ACCOUNT_FIELDS = tuple(field.name for field in fields(Account))
"""The columns an ``Account`` is read from, in its field order."""
CHANGEABLE_FIELDS = frozenset(ACCOUNT_FIELDS) - {"id", "created_at"}
_ACCOUNT_COLUMNS = [_USERS.c[name] for name in ACCOUNT_FIELDS]
_TOTAL_FIELDS = tuple(field.name for field in fields(AccountTotals))

_BY_KEY_HASH = select(*_ACCOUNT_COLUMNS).where(_USERS.c.api_key_hash == bindparam("key_hash"))
_BY_ID = select(*_ACCOUNT_COLUMNS).where(_USERS.c.id == bindparam("user_id"))
_TOTALS = select(*(_USERS.c[name] for name in _TOTAL_FIELDS)).where(_USERS.c.id == bindparam("user_id"))
_LOCK = (
    select(_USERS.c.id, _USERS.c.kudos_cents)
    .where(_USERS.c.id.in_(bindparam("user_ids", expanding=True)))
    .order_by(_USERS.c.id)
    .with_for_update()
)


def _account(row: Row[Any] | None) -> Account | None:
    return None if row is None else Account(**row._mapping)


class AccountRepository:
    """Every statement about ``users`` except the ledger's balance updates (``ledger_queries``)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_key_hash(self, key_hash: str) -> Account | None:
        """The account whose API key hashes to ``key_hash``."""
        return _account((await self._session.execute(_BY_KEY_HASH, {"key_hash": key_hash})).first())

    async def get(self, user_id: int) -> Account | None:
        """The account with this id."""
        return _account((await self._session.execute(_BY_ID, {"user_id": user_id})).first())

    async def many(self, user_ids: Iterable[int]) -> dict[int, Account]:
        """The accounts with these ids, by id (missing ones left out)."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}
        statement = select(*_ACCOUNT_COLUMNS).where(_USERS.c.id.in_(wanted))
        return {row.id: Account(**row._mapping) for row in await self._session.execute(statement)}

    async def totals(self, user_id: int) -> AccountTotals:
        """Balance and usage figures of an existing account, as of now."""
        row = (await self._session.execute(_TOTALS, {"user_id": user_id})).one()
        return AccountTotals(**row._mapping)

    async def balance(self, user_id: int) -> int:
        """The balance in hundredths of a kudo, as of now."""
        return (await self.totals(user_id)).kudos_cents

    async def lock(self, user_ids: Sequence[int]) -> dict[int, int]:
        """Lock these users' rows (PostgreSQL) until the transaction ends; returns their balances in hundredths.

        Whoever checks a balance or a per-user limit (queued images, shared keys, invited workers) and then
        writes takes this lock first, so the check still holds at the write and parallel calls take turns.
        Rows are locked in id order, so two transactions locking the same users can't deadlock. On SQLite every
        write transaction already runs alone (``BEGIN IMMEDIATE``).
        """
        rows = await self._session.execute(_LOCK, {"user_ids": sorted(set(user_ids))})
        return {int(user_id): int(cents) for user_id, cents in rows}

    async def create(self, values: dict[str, Any]) -> Account:
        """Insert a user row (``values`` are its columns) and return the new account."""
        statement = insert(_USERS).values(**values).returning(*_ACCOUNT_COLUMNS)
        created = _account((await self._session.execute(statement)).first())
        assert created is not None
        return created

    async def change(self, user_id: int, **changes: Any) -> Account:
        """Set some of an account's fields (``CHANGEABLE_FIELDS``, or ``api_key_hash``); the account after."""
        unknown = changes.keys() - CHANGEABLE_FIELDS - {"api_key_hash"}
        assert not unknown, f"not account fields: {unknown}"
        statement = update(_USERS).where(_USERS.c.id == user_id).values(**changes).returning(*_ACCOUNT_COLUMNS)
        changed = _account((await self._session.execute(statement)).first())
        assert changed is not None
        return changed

    async def add_usage(self, user_id: int, megapixelsteps: float) -> None:
        """Add delivered megapixel-steps to an account's usage."""
        statement = (
            update(_USERS)
            .where(_USERS.c.id == user_id)
            .values(usage_megapixelsteps=_USERS.c.usage_megapixelsteps + megapixelsteps)
        )
        await self._session.execute(statement)

    async def last_active_at(self, user_id: int) -> float | None:
        """When the account last made a request (epoch seconds; its creation if never)."""
        return await self._session.scalar(select(_USERS.c.last_active_at).where(_USERS.c.id == user_id))

    async def key_hash_of(self, user_id: int) -> str | None:
        """The stored hash of the account's API key."""
        return await self._session.scalar(select(_USERS.c.api_key_hash).where(_USERS.c.id == user_id))

    async def page(self, offset: int, limit: int, by_kudos: bool) -> list[Account]:
        """Accounts that are not deleted, by balance (descending) or by age (oldest first)."""
        order = [_USERS.c.kudos_cents.desc(), _USERS.c.id] if by_kudos else [_USERS.c.id]
        statement = (
            select(*_ACCOUNT_COLUMNS).where(_USERS.c.is_deleted.is_(False)).order_by(*order).offset(offset).limit(limit)
        )
        return [Account(**row._mapping) for row in await self._session.execute(statement)]
