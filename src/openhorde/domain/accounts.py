"""Accounts: API keys, the anonymous user, registration, lookup and roles."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.errors import (
    BadRequest,
    DeletedUser,
    InvalidAPIKey,
    UserNotFound,
)
from openhorde.storage.tables import User

ANONYMOUS_API_KEY = "0000000000"
ANONYMOUS_USER_ID = 0
ANONYMOUS_USERNAME = "Anonymous"
API_KEY_LENGTH = 22
DEFAULT_CONCURRENCY = 30
"""Images a registered user may have queued at once."""
ANONYMOUS_CONCURRENCY = 500
"""Images all anonymous callers together may have queued at once."""
USERNAME_MAX_LENGTH = 30
MAX_USER_ID = 2**31 - 1
"""The largest id ``users.id`` (a 32-bit integer on PostgreSQL) can hold; a larger id names nobody."""

_USER_BY_KEY = select(User).where(User.api_key_hash == bindparam("key_hash"))
_USERNAME_PATTERN = re.compile(r"^[\w][\w .\-]{1,29}$")


def hash_api_key(secret: str, api_key: str) -> str:
    """The keyed hash under which an API key is stored (HMAC-SHA256, hex)."""
    return hmac.new(secret.encode(), api_key.encode(), hashlib.sha256).hexdigest()


def new_api_key() -> str:
    """A fresh random 22-character API key."""
    return secrets.token_urlsafe(16)[:API_KEY_LENGTH]


def is_anonymous(user: User) -> bool:
    """Whether this is the shared anonymous account."""
    return user.id == ANONYMOUS_USER_ID


async def ensure_anonymous_user(session: AsyncSession, secret: str, now: float) -> None:
    """Create the anonymous account (id 0) if missing, keyed under the current secret."""
    anon = await session.get(User, ANONYMOUS_USER_ID)
    key_hash = hash_api_key(secret, ANONYMOUS_API_KEY)
    if anon is None:
        session.add(
            User(
                id=ANONYMOUS_USER_ID,
                username=ANONYMOUS_USERNAME,
                api_key_hash=key_hash,
                created_at=now,
                last_active_at=now,
                kudos_cents=0,
                concurrency=ANONYMOUS_CONCURRENCY,
                public_workers=True,
            )
        )
        await session.flush()
    elif anon.api_key_hash != key_hash:
        anon.api_key_hash = key_hash


async def authenticate(session: AsyncSession, secret: str, api_key: str | None) -> User:
    """The user owning ``api_key``; ``InvalidAPIKey`` if none, ``DeletedUser`` if deleted."""
    if not api_key:
        raise InvalidAPIKey()
    user = await session.scalar(_USER_BY_KEY, {"key_hash": hash_api_key(secret, api_key)})
    if user is None:
        raise InvalidAPIKey()
    if user.is_deleted:
        raise DeletedUser()
    return user


async def authenticate_optional(session: AsyncSession, secret: str, api_key: str | None) -> User | None:
    """Like ``authenticate`` but ``None`` when no key (or the anonymous key) is given."""
    if not api_key or api_key == ANONYMOUS_API_KEY:
        return None
    return await authenticate(session, secret, api_key)


def validate_username(username: str) -> str:
    """The trimmed username, or ``BadRequest`` if it is empty, too long or has odd characters."""
    name = username.strip()
    if not _USERNAME_PATTERN.fullmatch(name) or "#" in name:
        raise BadRequest(
            "A username has 2 to 30 letters, digits, spaces, dots, dashes or underscores.",
            rc="InvalidUsername",
        )
    return name


@dataclass(frozen=True)
class NewAccount:
    """A freshly created account and its API key (shown once, stored only hashed)."""

    user: User
    api_key: str


async def create_user(session: AsyncSession, secret: str, username: str, now: float | None = None) -> NewAccount:
    """Create a registered user with a new API key."""
    moment = now or time.time()
    api_key = new_api_key()
    user = User(
        username=validate_username(username),
        api_key_hash=hash_api_key(secret, api_key),
        created_at=moment,
        last_active_at=moment,
        kudos_cents=0,
        concurrency=DEFAULT_CONCURRENCY,
    )
    session.add(user)
    await session.flush()
    return NewAccount(user=user, api_key=api_key)


async def reset_api_key(session: AsyncSession, secret: str, user: User) -> str:
    """Give a user a new API key (the old one stops working) and return it."""
    api_key = new_api_key()
    user.api_key_hash = hash_api_key(secret, api_key)
    await session.flush()
    return api_key


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The user with this id; ``UserNotFound`` otherwise."""
    # An id beyond the column's range names nobody; asking the database would overflow (a 500).
    user = await session.get(User, user_id) if 0 <= user_id <= MAX_USER_ID else None
    if user is None:
        raise UserNotFound(f"User with ID '{user_id}' not found.")
    return user


def parse_display_name(name: str) -> int | None:
    """The id in a ``name#id`` string, or ``None`` if it has none."""
    _, sep, tail = name.rpartition("#")
    # ASCII digits only (``str.isdigit`` also accepts "²", which ``int()`` rejects), within an id's range.
    if not sep or not (tail.isascii() and tail.isdigit()) or len(tail) > len(str(MAX_USER_ID)):
        return None
    user_id = int(tail)
    return user_id if user_id <= MAX_USER_ID else None


async def find_by_display_name(session: AsyncSession, name: str) -> User:
    """The user a ``name#id`` string refers to; ``UserNotFound`` if none matches exactly."""
    user_id = parse_display_name(name)
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None or user.display_name.lower() != name.strip().lower() or user.is_deleted:
        raise UserNotFound(f"User '{name}' not found.")
    return user


async def list_users(session: AsyncSession, page: int, sort: str, page_size: int = 25) -> list[User]:
    """One page of users, by kudos (descending) or by age (oldest first)."""
    order = User.kudos_cents.desc() if sort == "kudos" else User.id.asc()
    rows = await session.scalars(
        select(User)
        .where(User.is_deleted.is_(False))
        .order_by(order, User.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return list(rows)
