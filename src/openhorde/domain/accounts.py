"""Accounts: API keys, the anonymous user, registration and lookup.

API keys are stored only as keyed hashes. Each server process keeps the accounts of recently used keys in a
``KeyCache`` for ``KEY_CACHE_SECONDS``, so a worker polling every second costs no key lookup; whatever changes
an account (roles, limits, a new key, deletion) announces it with ``changed``, which drops the account from
the cache of every process (and the cache's short life covers an announcement lost on the way).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol

from openhorde.errors import DeletedUser, InvalidAPIKey, InvalidUsername, UserNotFound
from openhorde.storage.events import EVERYTHING, Change
from openhorde.storage.repositories.accounts import Account as Account  # the domain's name for it too
from openhorde.storage.store import Store

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

_USERNAME_PATTERN = re.compile(r"^[\w][\w .\-]{1,29}$")
KEY_CACHE_SECONDS = 5.0
"""How long a process trusts an account it looked up by key without asking the database again."""
KEY_CACHE_SIZE = 50_000
ACCOUNT_SUBJECT_PREFIX = "account:"


class HasId(Protocol):
    """Anything with a user id: an ``Account``, or a row that names one."""

    @property
    def id(self) -> int:
        """The user id."""
        ...


def hash_api_key(secret: str, api_key: str) -> str:
    """The keyed hash under which an API key is stored (HMAC-SHA256, hex)."""
    return hmac.new(secret.encode(), api_key.encode(), hashlib.sha256).hexdigest()


def new_api_key() -> str:
    """A fresh random 22-character API key."""
    return secrets.token_urlsafe(16)[:API_KEY_LENGTH]


def is_anonymous(user: HasId) -> bool:
    """Whether this is the shared anonymous account."""
    return user.id == ANONYMOUS_USER_ID


@dataclass
class KeyCache:
    """This process's recently used API keys: key hash -> (account, when it was read)."""

    seconds: float = KEY_CACHE_SECONDS
    _accounts: dict[str, tuple[Account, float]] = field(default_factory=dict)

    def get(self, key_hash: str, now: float) -> Account | None:
        """The cached account of a key hash, unless older than ``seconds``."""
        entry = self._accounts.get(key_hash)
        if entry is None or now - entry[1] >= self.seconds:
            return None
        return entry[0]

    def put(self, key_hash: str, account: Account, now: float) -> None:
        """Remember an account just read from the database."""
        if len(self._accounts) >= KEY_CACHE_SIZE:
            self._accounts.clear()  # rare; a full cache is refilled by the next lookups
        self._accounts[key_hash] = (account, now)

    def forget(self, user_id: int) -> None:
        """Drop every cached key of this user."""
        stale = [key for key, (account, _) in self._accounts.items() if account.id == user_id]
        for key in stale:
            del self._accounts[key]

    def on_change(self, change: Change) -> None:
        """A broker listener: forget accounts announced as changed, in this process or another."""
        if change.subject == EVERYTHING:
            self._accounts.clear()
        elif change.subject.startswith(ACCOUNT_SUBJECT_PREFIX):
            self.forget(int(change.subject.removeprefix(ACCOUNT_SUBJECT_PREFIX)))


def changed(store: Store, user_id: int) -> None:
    """Announce that an account's roles, limits or key changed: every process drops it from its key cache."""
    store.announce(Change(f"{ACCOUNT_SUBJECT_PREFIX}{user_id}", "changed"))


async def ensure_anonymous_user(store: Store, secret: str, now: float) -> None:
    """Create the anonymous account (id 0) if missing, keyed under the current secret."""
    key_hash = hash_api_key(secret, ANONYMOUS_API_KEY)
    if await store.accounts.get(ANONYMOUS_USER_ID) is None:
        await store.accounts.create(
            {
                "id": ANONYMOUS_USER_ID,
                "username": ANONYMOUS_USERNAME,
                "api_key_hash": key_hash,
                "created_at": now,
                "last_active_at": now,
                "kudos_cents": 0,
                "concurrency": ANONYMOUS_CONCURRENCY,
                "public_workers": True,
            }
        )
    elif await store.accounts.key_hash_of(ANONYMOUS_USER_ID) != key_hash:
        await store.accounts.change(ANONYMOUS_USER_ID, api_key_hash=key_hash)


async def authenticate(store: Store, secret: str, cache: KeyCache, api_key: str | None) -> Account:
    """The account owning ``api_key``; ``InvalidAPIKey`` if none, ``DeletedUser`` if deleted."""
    if not api_key:
        raise InvalidAPIKey()
    key_hash = hash_api_key(secret, api_key)
    now = time.monotonic()
    account = cache.get(key_hash, now)
    if account is None:
        account = await store.accounts.by_key_hash(key_hash)
        if account is None:
            raise InvalidAPIKey()
        cache.put(key_hash, account, now)
    if account.is_deleted:
        raise DeletedUser()
    return account


async def authenticate_optional(store: Store, secret: str, cache: KeyCache, api_key: str | None) -> Account | None:
    """Like ``authenticate`` but ``None`` when no key (or the anonymous key) is given."""
    if not api_key or api_key == ANONYMOUS_API_KEY:
        return None
    return await authenticate(store, secret, cache, api_key)


def validate_username(username: str) -> str:
    """The trimmed username, or ``BadRequest`` if it is empty, too long or has odd characters."""
    name = username.strip()
    if not _USERNAME_PATTERN.fullmatch(name) or "#" in name:
        raise InvalidUsername("A username has 2 to 30 letters, digits, spaces, dots, dashes or underscores.")
    return name


@dataclass(frozen=True)
class NewAccount:
    """A freshly created account and its API key (shown once, stored only hashed)."""

    user: Account
    api_key: str


async def create_user(store: Store, secret: str, username: str, now: float | None = None) -> NewAccount:
    """Create a registered user with a new API key."""
    moment = now or time.time()
    api_key = new_api_key()
    account = await store.accounts.create(
        {
            "username": validate_username(username),
            "api_key_hash": hash_api_key(secret, api_key),
            "created_at": moment,
            "last_active_at": moment,
            "kudos_cents": 0,
            "concurrency": DEFAULT_CONCURRENCY,
        }
    )
    return NewAccount(user=account, api_key=api_key)


async def reset_api_key(store: Store, secret: str, user: HasId) -> str:
    """Give a user a new API key (the old one stops working in every process) and return it."""
    api_key = new_api_key()
    await store.accounts.change(user.id, api_key_hash=hash_api_key(secret, api_key))
    changed(store, user.id)
    return api_key


async def get_user(store: Store, user_id: int) -> Account:
    """The user with this id; ``UserNotFound`` otherwise."""
    # An id beyond the column's range names nobody; asking the database would overflow (a 500).
    user = await store.accounts.get(user_id) if 0 <= user_id <= MAX_USER_ID else None
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


async def find_by_display_name(store: Store, name: str) -> Account:
    """The user a ``name#id`` string refers to; ``UserNotFound`` if none matches exactly."""
    user_id = parse_display_name(name)
    user = await store.accounts.get(user_id) if user_id is not None else None
    if user is None or user.display_name.lower() != name.strip().lower() or user.is_deleted:
        raise UserNotFound(f"User '{name}' not found.")
    return user


async def list_users(store: Store, page: int, sort: str, page_size: int = 25) -> list[Account]:
    """One page of users, by kudos (descending) or by age (oldest first)."""
    return await store.accounts.page((page - 1) * page_size, page_size, by_kudos=sort == "kudos")
