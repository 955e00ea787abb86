"""Shared keys: keys a user lends out to generate on their account, within a budget, an expiry and caps.

A shared key is a UUID (the AI Horde's form), which is how it is told apart from an API key (22
characters) without a second lookup. Like API keys it is stored only as a keyed hash. So that the owner
can still list their keys (``sharedkey_ids``), the key is *derived* from the row's random id with the
server secret (HMAC); the database alone reveals no key, and a new secret voids them all, as it does
API keys.

Budget: a request made with a key is refused unless the key's budget, less what its queued requests
will still cost, covers the request's full price (stricter than the AI Horde, which only checks this for
upfront requests and lets a key run into the negative). The owner pays through the ledger as usual; each
settled image adds its charge to the key's ``utilized_cents`` in the same transaction (the submit's
settlement), so a key stops exactly at its budget.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from openhorde.config import Settings
from openhorde.domain import accounts
from openhorde.domain.accounts import Account
from openhorde.domain.context import HordeContext
from openhorde.domain.names import clean_name
from openhorde.errors import (
    AnonForbidden,
    DeletedUser,
    InvalidAPIKey,
    InvalidSharedKeyName,
    NotOwner,
    NoValidActions,
    SharedKeyEmpty,
    SharedKeyExpired,
    SharedKeyInsufficientKudos,
    SharedKeyLimitExceeded,
    SharedKeyNotFound,
    TooManySharedKeys,
)
from openhorde.storage.repositories.sharedkeys import SharedKey as SharedKey  # the domain's name for it too
from openhorde.storage.store import Store

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

    user: Account
    sharedkey: SharedKey | None = None


def _is_expired(key: SharedKey, now: float) -> bool:
    return key.expires_at is not None and now >= key.expires_at


async def _with_owner(store: Store, secret: str, key: str) -> tuple[SharedKey, Account] | None:
    if not looks_like_shared_key(key):
        return None
    return await store.sharedkeys.with_owner(accounts.hash_api_key(secret, key.lower()))


async def authenticate_caller(store: Store, ctx: HordeContext, api_key: str | None, now: float | None = None) -> Caller:
    """The caller of an API key or a shared key (acting as its owner); ``SharedKeyExpired`` if it has expired.

    A shared key costs one statement: the key and its owner are read together."""
    if not api_key or not looks_like_shared_key(api_key):
        return Caller(await accounts.authenticate(store, ctx.secret, ctx.keys, api_key))
    found = await _with_owner(store, ctx.secret, api_key)
    if found is None:
        raise InvalidAPIKey()
    key, owner = found
    if _is_expired(key, now or time.time()):
        raise SharedKeyExpired()
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
    owner: Account
    sharedkey: SharedKey


def _max_keys(user: Account, settings: Settings) -> int:
    if user.is_education:
        return EDUCATION_MAX_SHARED_KEYS
    if user.is_trusted or user.is_moderator or user.is_admin:
        return settings.sharedkeys.max_shared_keys_trusted
    return settings.sharedkeys.max_shared_keys


def _changes(fields: SharedKeyFields, now: float) -> dict[str, Any]:
    """The stored fields that ``fields`` set (empty if none is given)."""
    changes: dict[str, Any] = {}
    if fields.kudos is not None:
        changes["kudos_limit"] = fields.kudos
    if fields.expiry is not None:
        changes["expires_at"] = None if fields.expiry < 0 else now + fields.expiry * SECONDS_PER_DAY
    if fields.name is not None:
        changes["name"] = clean_name(
            fields.name,
            what="shared key name",
            minimum=NAME_MIN_LENGTH,
            maximum=NAME_MAX_LENGTH,
            error=InvalidSharedKeyName,
        )
    for cap in ("max_image_pixels", "max_image_steps", "max_text_tokens"):
        value = getattr(fields, cap)
        if value is not None:
            changes[cap] = value
    return changes


async def create(
    store: Store,
    settings: Settings,
    secret: str,
    user: Account,
    fields: SharedKeyFields,
    now: float | None = None,
) -> SharedKeyView:
    """Create a shared key for ``user`` (not anonymous; at most 3, 10 if trusted, 1000 for education)."""
    moment = now or time.time()
    if accounts.is_anonymous(user):
        raise AnonForbidden("Anonymous users cannot create shared keys; register for an API key.")
    await store.accounts.lock([user.id])  # parallel creations count one after another
    if await store.sharedkeys.count_of(user.id) >= _max_keys(user, settings):
        raise TooManySharedKeys(f"This account may have at most {_max_keys(user, settings)} shared keys.")
    row_id = str(uuid.uuid4())
    key = key_of(secret, row_id)
    sharedkey = SharedKey(
        id=row_id,
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
    sharedkey = replace(sharedkey, **_changes(fields, moment))
    await store.sharedkeys.create(sharedkey, accounts.hash_api_key(secret, key))
    return SharedKeyView(key=key, owner=user, sharedkey=sharedkey)


async def get(store: Store, secret: str, key: str) -> SharedKeyView:
    """A shared key by its key; knowing the key is what lets one read it, as on the AI Horde."""
    found = await _with_owner(store, secret, key)
    if found is None:
        raise SharedKeyNotFound(f"Shared key '{key}' not found.")
    sharedkey, owner = found
    return SharedKeyView(key=key.lower(), owner=owner, sharedkey=sharedkey)


async def _owned(store: Store, secret: str, user: Account, key: str) -> SharedKeyView:
    view = await get(store, secret, key)
    if view.sharedkey.user_id != user.id:
        raise NotOwner("Only the owner of a shared key can change or delete it.")
    return view


async def modify(
    store: Store, secret: str, user: Account, key: str, fields: SharedKeyFields, now: float | None = None
) -> SharedKeyView:
    """Change the owner's shared key; an ``expiry`` counts its days from now."""
    view = await _owned(store, secret, user, key)
    changes = _changes(fields, now or time.time())
    if not changes:
        raise NoValidActions("No shared key modification selected!")
    changed = await store.sharedkeys.change(view.sharedkey.id, changes)
    if changed is None:  # deleted since it was read
        raise SharedKeyNotFound(f"Shared key '{key}' not found.")
    return SharedKeyView(key=view.key, owner=view.owner, sharedkey=changed)


async def delete(store: Store, secret: str, user: Account, key: str) -> None:
    """Delete the owner's shared key: it stops working at once (queued requests made with it still run)."""
    view = await _owned(store, secret, user, key)
    await store.sharedkeys.delete(view.sharedkey.id)


async def keys_of(store: Store, secret: str, user_id: int) -> list[str]:
    """The shared keys of a user (the ``sharedkey_ids`` of their details)."""
    return [key_of(secret, row_id) for row_id in await store.sharedkeys.ids_of(user_id)]


def remaining_cents(key: SharedKey) -> int | None:
    """Hundredths of a kudo the key may still spend; ``None`` if unlimited."""
    if key.kudos_limit < 0:
        return None
    return key.kudos_limit * 100 - key.utilized_cents


async def check_request(store: Store, key: SharedKey, width: int, height: int, steps: int, total_cents: int) -> None:
    """Refuse a request made with ``key`` that breaks its caps or that its remaining budget cannot pay in full.

    One statement: the key as it is now, locked (PostgreSQL) so two requests on one key check its budget in
    turn, with what its queued requests will still cost.
    """
    if 0 <= key.max_image_pixels < width * height:
        raise SharedKeyLimitExceeded(
            f"This shared key allows at most {key.max_image_pixels} pixels per image; {width}x{height} is more."
        )
    if 0 <= key.max_image_steps < steps:
        raise SharedKeyLimitExceeded(f"This shared key allows at most {key.max_image_steps} steps; {steps} is more.")
    found = await store.sharedkeys.locked_with_outstanding(key.id)
    locked, outstanding = found if found is not None else (key, 0)
    remaining = remaining_cents(locked)
    if remaining is None:
        return
    if remaining <= 0:
        raise SharedKeyEmpty()
    available = remaining - outstanding
    if total_cents > available:
        raise SharedKeyInsufficientKudos(
            f"This request costs {total_cents / 100} kudos; the shared key has {max(available, 0) / 100} left."
        )
