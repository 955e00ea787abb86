"""Shared keys: keys a user lends out to generate on their account, within a budget, an expiry and caps.

A shared key is a UUID (the AI Horde's form), which is how it is told apart from an API key (22
characters) without a second lookup. Like API keys it is stored only as a keyed hash. So that the owner
can still list their keys (``sharedkey_ids``), the key is *derived* from the row's random id with the
server secret (HMAC); the database alone reveals no key, and a new secret voids them all, as it does
API keys.

Budget: a request made with a key is refused unless the key's budget, less what its queued requests
will still cost, covers the request's full price (stricter than the AI Horde, which only checks this for
upfront requests and lets a key run into the negative). The owner pays through the ledger as usual; each
settled image adds its charge to the key's ``utilized_cents`` in the same transaction
(``record_use``), so a key stops exactly at its budget.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.config import Settings
from openhorde.domain import accounts
from openhorde.domain.names import clean_name
from openhorde.errors import (
    AnonForbidden,
    DeletedUser,
    InvalidAPIKey,
    NotOwner,
    NoValidActions,
    SharedKeyEmpty,
    SharedKeyExpired,
    SharedKeyInsufficientKudos,
    SharedKeyLimitExceeded,
    SharedKeyNotFound,
    TooManySharedKeys,
)
from openhorde.storage import ledger_queries, sharedkey_queries
from openhorde.storage.tables import Request, SharedKey, User

UNLIMITED = -1
DEFAULT_KUDOS = 5000
"""A new key's budget in kudos when none is given (the reference's default)."""
EDUCATION_MAX_SHARED_KEYS = 1000
SECONDS_PER_DAY = 86_400
NAME_MIN_LENGTH = 3
NAME_MAX_LENGTH = 255
_UUID_LENGTH = 36


def looks_like_shared_key(api_key: str) -> bool:
    """Whether ``api_key`` has a shared key's form (a canonical UUID); API keys never do."""
    if len(api_key) != _UUID_LENGTH:
        return False
    try:
        return str(uuid.UUID(api_key)) == api_key.lower()
    except ValueError:
        return False


def key_of(secret: str, sharedkey_id: str) -> str:
    """The shared key of the row ``sharedkey_id``: a UUID derived from it with the server secret."""
    digest = hmac.new(secret.encode(), f"sharedkey:{sharedkey_id}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: a user, and the shared key it came with, if any."""

    user: User
    sharedkey: SharedKey | None = None


def _is_expired(key: SharedKey, now: float) -> bool:
    return key.expires_at is not None and now >= key.expires_at


async def _by_key(session: AsyncSession, secret: str, key: str) -> SharedKey | None:
    if not looks_like_shared_key(key):
        return None
    return await sharedkey_queries.key_by_hash(session, accounts.hash_api_key(secret, key.lower()))


async def authenticate_caller(
    session: AsyncSession, secret: str, api_key: str | None, now: float | None = None
) -> Caller:
    """The caller of an API key or a shared key (acting as its owner); ``SharedKeyExpired`` if it has expired."""
    if not api_key or not looks_like_shared_key(api_key):
        return Caller(await accounts.authenticate(session, secret, api_key))
    key = await _by_key(session, secret, api_key)
    if key is None:
        raise InvalidAPIKey()
    if _is_expired(key, now or time.time()):
        raise SharedKeyExpired()
    owner = await accounts.get_user(session, key.user_id)
    if owner.is_deleted:
        raise DeletedUser()
    return Caller(owner, key)


@dataclass
class SharedKeyFields:
    """What ``PUT /sharedkeys`` and ``PATCH /sharedkeys/{id}`` may set; ``None`` leaves a field as it is."""

    kudos: int | None = None
    expiry: int | None = None
    name: str | None = None
    max_image_pixels: int | None = None
    max_image_steps: int | None = None
    max_text_tokens: int | None = None


@dataclass(frozen=True)
class SharedKeyView:
    """A shared key as its owner (or holder) sees it."""

    key: str
    owner: User
    row: SharedKey


def _max_keys(user: User, settings: Settings) -> int:
    if user.is_education:
        return EDUCATION_MAX_SHARED_KEYS
    if user.is_trusted or user.is_moderator or user.is_admin:
        return settings.max_shared_keys_trusted
    return settings.max_shared_keys


_INVALID_NAME = "InvalidSharedKeyName"


def _apply(key: SharedKey, fields: SharedKeyFields, now: float) -> bool:
    """Set the given fields on ``key``; whether any was given."""
    changed = False
    if fields.kudos is not None:
        key.kudos_limit, changed = fields.kudos, True
    if fields.expiry is not None:
        key.expires_at = None if fields.expiry < 0 else now + fields.expiry * SECONDS_PER_DAY
        changed = True
    if fields.name is not None:
        name = clean_name(
            fields.name, what="shared key name", minimum=NAME_MIN_LENGTH, maximum=NAME_MAX_LENGTH, rc=_INVALID_NAME
        )
        key.name, changed = name, True
    for cap in ("max_image_pixels", "max_image_steps", "max_text_tokens"):
        value = getattr(fields, cap)
        if value is not None:
            setattr(key, cap, value)
            changed = True
    return changed


async def create(
    session: AsyncSession,
    settings: Settings,
    secret: str,
    user: User,
    fields: SharedKeyFields,
    now: float | None = None,
) -> SharedKeyView:
    """Create a shared key for ``user`` (not anonymous; at most 3, 10 if trusted, 1000 for education)."""
    moment = now or time.time()
    if accounts.is_anonymous(user):
        raise AnonForbidden("Anonymous users cannot create shared keys; register for an API key.")
    await ledger_queries.lock_users(session, [user.id])  # parallel creations count one after another
    if await sharedkey_queries.count_of(session, user.id) >= _max_keys(user, settings):
        raise TooManySharedKeys(f"This account may have at most {_max_keys(user, settings)} shared keys.")
    row_id = str(uuid.uuid4())
    key = key_of(secret, row_id)
    row = SharedKey(
        id=row_id,
        key_hash=accounts.hash_api_key(secret, key),
        user_id=user.id,
        name="",
        kudos_limit=DEFAULT_KUDOS,
        utilized_cents=0,
        expires_at=None,
        max_image_pixels=UNLIMITED,
        max_image_steps=UNLIMITED,
        max_text_tokens=UNLIMITED,
        created_at=moment,
    )
    _apply(row, fields, moment)
    session.add(row)
    await session.flush()
    return SharedKeyView(key=key, owner=user, row=row)


async def get(session: AsyncSession, secret: str, key: str) -> SharedKeyView:
    """A shared key by its key; knowing the key is what lets one read it, as on the AI Horde."""
    row = await _by_key(session, secret, key)
    if row is None:
        raise SharedKeyNotFound(f"Shared key '{key}' not found.")
    return SharedKeyView(key=key.lower(), owner=await accounts.get_user(session, row.user_id), row=row)


async def _owned(session: AsyncSession, secret: str, user: User, key: str) -> SharedKeyView:
    view = await get(session, secret, key)
    if view.row.user_id != user.id:
        raise NotOwner("Only the owner of a shared key can change or delete it.")
    return view


async def modify(
    session: AsyncSession, secret: str, user: User, key: str, fields: SharedKeyFields, now: float | None = None
) -> SharedKeyView:
    """Change the owner's shared key; an ``expiry`` counts its days from now."""
    view = await _owned(session, secret, user, key)
    if not _apply(view.row, fields, now or time.time()):
        raise NoValidActions("No shared key modification selected!")
    await session.flush()
    return view


async def delete(session: AsyncSession, secret: str, user: User, key: str) -> None:
    """Delete the owner's shared key: it stops working at once (queued requests made with it still run)."""
    view = await _owned(session, secret, user, key)
    await session.delete(view.row)
    await session.flush()


async def keys_of(session: AsyncSession, secret: str, user_id: int) -> list[str]:
    """The shared keys of a user (the ``sharedkey_ids`` of their details)."""
    return [key_of(secret, row_id) for row_id in await sharedkey_queries.key_ids_of(session, user_id)]


def remaining_cents(key: SharedKey) -> int | None:
    """Hundredths of a kudo the key may still spend; ``None`` if unlimited."""
    if key.kudos_limit < 0:
        return None
    return key.kudos_limit * 100 - key.utilized_cents


async def check_request(
    session: AsyncSession, key: SharedKey, width: int, height: int, steps: int, total_cents: int
) -> None:
    """Refuse a request made with ``key`` that breaks its caps or that its remaining budget cannot pay in full."""
    if 0 <= key.max_image_pixels < width * height:
        raise SharedKeyLimitExceeded(
            f"This shared key allows at most {key.max_image_pixels} pixels per image; {width}x{height} is more."
        )
    if 0 <= key.max_image_steps < steps:
        raise SharedKeyLimitExceeded(f"This shared key allows at most {key.max_image_steps} steps; {steps} is more.")
    locked = await sharedkey_queries.lock_key(session, key.id) or key
    remaining = remaining_cents(locked)
    if remaining is None:
        return
    if remaining <= 0:
        raise SharedKeyEmpty()
    available = remaining - await sharedkey_queries.outstanding_cents(session, key.user_id, key.id)
    if total_cents > available:
        raise SharedKeyInsufficientKudos(
            f"This request costs {total_cents / 100} kudos; the shared key has {max(available, 0) / 100} left."
        )


async def record_use(session: AsyncSession, request: Request, censored: bool) -> None:
    """Count one delivered image of a request made with a shared key against that key (censored ones are free)."""
    if request.sharedkey_id is not None and not censored:
        await sharedkey_queries.add_usage(session, request.sharedkey_id, request.charge_cents)
