"""The shared keys repository: keys a user lends out, their owners, their budgets and their queued charges.

A key is read as a frozen ``SharedKey`` (its stored hash stays here). On the request path a shared key costs
one statement to authenticate (the key with its owner's account) and one to check a request's budget (the key
locked, with what its queued requests will still cost); each delivered image's use of the key is written by
the submit's settlement (``deliveries.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.repositories.accounts import ACCOUNT_FIELDS, Account
from openhorde.storage.tables import Request, User
from openhorde.storage.tables import SharedKey as SharedKeyRow

_KEYS = cast(Table, SharedKeyRow.__table__)
_REQUESTS = cast(Table, Request.__table__)
_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class SharedKey:
    """A shared key as the domain sees it (not the key itself: it is derived from ``id``, and stored hashed)."""

    id: str
    user_id: int
    name: str
    kudos_limit: int
    """Its budget in whole kudos; negative: unlimited."""
    utilized_cents: int
    expires_at: float | None
    max_image_pixels: int
    max_image_steps: int
    max_text_tokens: int
    created_at: float


KEY_FIELDS = tuple(field.name for field in fields(SharedKey))
"""The columns a ``SharedKey`` is read from, in its field order."""
CHANGEABLE_FIELDS = frozenset(KEY_FIELDS) - {"id", "user_id", "utilized_cents", "created_at"}
_KEY_COLUMNS = [_KEYS.c[name] for name in KEY_FIELDS]
_OWNER_COLUMNS = [_USERS.c[name].label(f"owner_{name}") for name in ACCOUNT_FIELDS]

_WITH_OWNER_BY_HASH = (
    select(*_KEY_COLUMNS, *_OWNER_COLUMNS)
    .join_from(_KEYS, _USERS, _USERS.c.id == _KEYS.c.user_id)
    .where(_KEYS.c.key_hash == bindparam("hash"))
)
# Filtering on the owner as well lets the database use the owner's queued-requests index.
_OUTSTANDING = (
    select(func.coalesce(func.sum((_REQUESTS.c.n_waiting + _REQUESTS.c.n_processing) * _REQUESTS.c.charge_cents), 0))
    .where(
        _REQUESTS.c.state == "queued",
        _REQUESTS.c.user_id == _KEYS.c.user_id,
        _REQUESTS.c.sharedkey_id == _KEYS.c.id,
    )
    .scalar_subquery()
)
_LOCKED_WITH_OUTSTANDING = (
    select(*_KEY_COLUMNS, _OUTSTANDING).where(_KEYS.c.id == bindparam("key")).with_for_update(of=_KEYS)
)
_IDS_OF = select(_KEYS.c.id).where(_KEYS.c.user_id == bindparam("owner")).order_by(_KEYS.c.created_at)
_COUNT_OF = select(func.count()).select_from(_KEYS).where(_KEYS.c.user_id == bindparam("owner"))
_INSERT = insert(_KEYS).values({name: bindparam(f"v_{name}") for name in (*KEY_FIELDS, "key_hash")})
_DELETE = delete(_KEYS).where(_KEYS.c.id == bindparam("key"))


@lru_cache(maxsize=64)
def _change_statement(names: frozenset[str]) -> Any:
    """Set these fields of one key (``v_<name>`` parameters) and return the key after."""
    values = {name: bindparam(f"v_{name}", type_=_KEYS.c[name].type) for name in sorted(names)}
    return update(_KEYS).where(_KEYS.c.id == bindparam("key")).values(values).returning(*_KEY_COLUMNS)


def _key(row: Any) -> SharedKey:
    return SharedKey(*row[: len(KEY_FIELDS)])


class SharedKeyRepository:
    """Every statement about ``shared_keys`` except the settlement's use of a key (``deliveries.py``)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def with_owner(self, key_hash: str) -> tuple[SharedKey, Account] | None:
        """The key stored under this keyed hash and its owner's account, in one statement; ``None`` if none."""
        row = (await self._session.execute(_WITH_OWNER_BY_HASH, {"hash": key_hash})).first()
        if row is None:
            return None
        return _key(row), Account(*row[len(KEY_FIELDS) :])

    async def locked_with_outstanding(self, sharedkey_id: str) -> tuple[SharedKey, int] | None:
        """The key as it is now, locked on PostgreSQL (``FOR UPDATE``) until the transaction ends, with the
        hundredths of a kudo its queued requests will still cost; ``None`` if it was deleted."""
        row = (await self._session.execute(_LOCKED_WITH_OUTSTANDING, {"key": sharedkey_id})).first()
        return None if row is None else (_key(row), int(row[-1] or 0))

    async def ids_of(self, user_id: int) -> list[str]:
        """Row ids of a user's shared keys, oldest first."""
        return [str(key_id) for key_id in (await self._session.execute(_IDS_OF, {"owner": user_id})).scalars()]

    async def count_of(self, user_id: int) -> int:
        """How many shared keys a user has."""
        return int((await self._session.execute(_COUNT_OF, {"owner": user_id})).scalar() or 0)

    async def create(self, key: SharedKey, key_hash: str) -> None:
        """Store a new key under its keyed hash."""
        values = {f"v_{name}": getattr(key, name) for name in KEY_FIELDS}
        await self._session.execute(_INSERT, {**values, "v_key_hash": key_hash})

    async def change(self, sharedkey_id: str, changes: dict[str, Any]) -> SharedKey | None:
        """Set some of a key's fields (``CHANGEABLE_FIELDS``); the key after, ``None`` if it no longer exists."""
        unknown = changes.keys() - CHANGEABLE_FIELDS
        assert not unknown, f"not changeable shared key fields: {unknown}"
        values = {f"v_{name}": value for name, value in changes.items()}
        statement = _change_statement(frozenset(changes))
        row = (await self._session.execute(statement, {**values, "key": sharedkey_id})).first()
        return None if row is None else _key(row)

    async def delete(self, sharedkey_id: str) -> None:
        """Delete a key (queued requests made with it keep its id, and still run)."""
        await self._session.execute(_DELETE, {"key": sharedkey_id})
