"""IP timeouts (``/operations/ipaddr``): moderators bar an address from generating and registering for a while.

A timeout is a mark in the counter store that expires by itself (Redis TTL, or in-memory expiry), so every
server process sharing the store honours it. Setting and lifting one is audit-logged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from openhorde.domain import audit
from openhorde.errors import BadRequest, NotModerator, TimeoutIP
from openhorde.storage.counters import Counters, seconds_left
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.store import Store

KEY_PREFIX = "ipt:"
MAX_TIMEOUT_HOURS = 24 * 30


@dataclass(frozen=True)
class IPTimeout:
    """One timed-out address and the whole seconds it has left."""

    ipaddr: str
    seconds: int


def _require_moderator(actor: Account) -> None:
    if not (actor.is_moderator or actor.is_admin):
        raise NotModerator("Only moderators can manage IP timeouts.")


def normalise_ip(value: str) -> str:
    """The canonical text of an IP address; raises ``BadRequest`` for anything else."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise BadRequest(f"{value!r} is not an IP address.") from None


async def ensure_not_timed_out(counters: Counters, ip: str, now: float) -> None:
    """Raise ``TimeoutIP`` (403) if ``ip`` is timed out."""
    try:
        canonical = str(ipaddress.ip_address(ip))
    except ValueError:
        return
    left = await counters.remaining(KEY_PREFIX + canonical, now)
    if left is not None:
        raise TimeoutIP(f"Your IP address is timed out for {seconds_left(left)} more seconds.")


async def add_timeout(
    store: Store, counters: Counters, actor: Account, ipaddr: str, hours: int, now: float
) -> IPTimeout:
    """Time ``ipaddr`` out for ``hours`` hours (replacing an earlier timeout)."""
    _require_moderator(actor)
    ip = normalise_ip(ipaddr)
    if not 1 <= hours <= MAX_TIMEOUT_HOURS:
        raise BadRequest(f"hours must be between 1 and {MAX_TIMEOUT_HOURS}.")
    # The entry first: if writing it fails, no timeout is set without one.
    await audit.record(store, actor, "ipaddr.timeout", "ipaddr", ip, {"hours": hours}, now=now)
    await counters.mark(KEY_PREFIX + ip, hours * 3600, now)
    return IPTimeout(ip, hours * 3600)


async def remove_timeout(store: Store, counters: Counters, actor: Account, ipaddr: str, now: float) -> bool:
    """Lift the timeout of ``ipaddr``; whether there was one."""
    _require_moderator(actor)
    ip = normalise_ip(ipaddr)
    removed = await counters.unmark(KEY_PREFIX + ip)
    await audit.record(store, actor, "ipaddr.untimeout", "ipaddr", ip, {"was_timed_out": removed}, now=now)
    return removed


async def list_timeouts(counters: Counters, actor: Account, now: float) -> list[IPTimeout]:
    """Every timed-out address, the longest-lasting first."""
    _require_moderator(actor)
    found = await counters.marks(KEY_PREFIX, now)
    entries = [IPTimeout(ip, seconds_left(left)) for ip, left in found.items()]
    return sorted(entries, key=lambda t: (-t.seconds, t.ipaddr))
