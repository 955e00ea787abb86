"""IP timeouts (``/operations/ipaddr``): moderators bar an address from generating and registering for a while.

A timeout is a mark in the counter store that expires by itself (Redis TTL, or in-memory expiry), so every
server process sharing the store honours it. Setting and lifting one is audit-logged.

``/operations/block_worker_ipaddr/{worker_id}`` times out the address a worker last popped from, for days: an
IPv4 address alone, an IPv6 address with its whole /64 (one machine's usual share, as on the AI Horde). Such a
block is a timeout of the network (``2001:db8::/64``), listed and lifted like any other.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from openhorde.domain import audit
from openhorde.errors import BadRequest, NotModerator, TimeoutIP
from openhorde.storage.counters import Counters, seconds_left
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.workers import WorkerInfo
from openhorde.storage.store import Store

KEY_PREFIX = "ipt:"
MAX_TIMEOUT_HOURS = 24 * 30
MAX_BLOCK_DAYS = MAX_TIMEOUT_HOURS // 24
IPV6_BLOCK_PREFIX = 64
"""An IPv6 worker's address is blocked with its /64 network."""


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


def _normalise_ip_or_block(value: str) -> str:
    """The canonical text of an address, or of a network blocked with a worker's address (``2001:db8::/64``)."""
    if "/" not in value:
        return normalise_ip(value)
    try:
        return str(ipaddress.ip_network(value.strip()))
    except ValueError:
        raise BadRequest(f"{value!r} is neither an IP address nor a network.") from None


def _timeout_keys(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """The marks that time ``ip`` out: its own, and for IPv6 its /64 block's."""
    keys = [str(ip)]
    if ip.version == 6:
        keys.append(str(ipaddress.ip_network(f"{ip}/{IPV6_BLOCK_PREFIX}", strict=False)))
    return keys


async def ensure_not_timed_out(counters: Counters, ip: str, now: float) -> None:
    """Raise ``TimeoutIP`` (403) if ``ip`` is timed out (or, for IPv6, its /64 is blocked)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return
    for key in _timeout_keys(address):
        left = await counters.remaining(KEY_PREFIX + key, now)
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
    ip = _normalise_ip_or_block(ipaddr)
    removed = await counters.unmark(KEY_PREFIX + ip)
    await audit.record(store, actor, "ipaddr.untimeout", "ipaddr", ip, {"was_timed_out": removed}, now=now)
    return removed


async def list_timeouts(counters: Counters, actor: Account, now: float) -> list[IPTimeout]:
    """Every timed-out address, the longest-lasting first."""
    _require_moderator(actor)
    found = await counters.marks(KEY_PREFIX, now)
    entries = [IPTimeout(ip, seconds_left(left)) for ip, left in found.items()]
    return sorted(entries, key=lambda t: (-t.seconds, t.ipaddr))


async def timeouts_matching(counters: Counters, actor: Account, ipaddr: str, now: float) -> list[IPTimeout]:
    """The timeouts that bar ``ipaddr``: its own and, for IPv6, its /64 block's."""
    _require_moderator(actor)
    address = ipaddress.ip_address(normalise_ip(ipaddr))
    found = []
    for key in _timeout_keys(address):
        left = await counters.remaining(KEY_PREFIX + key, now)
        if left is not None:
            found.append(IPTimeout(key, seconds_left(left)))
    return found


def _worker_block(worker: WorkerInfo) -> str:
    """What blocking a worker's address times out: the address, or its /64 for IPv6."""
    if worker.ipaddr is None:
        raise BadRequest("This worker has not reported an address yet.")
    return _timeout_keys(ipaddress.ip_address(worker.ipaddr))[-1]


async def block_worker_ip(
    store: Store, counters: Counters, actor: Account, worker: WorkerInfo, days: int, now: float
) -> IPTimeout:
    """Time out the address ``worker`` last popped from for ``days`` days (see the module docstring)."""
    _require_moderator(actor)
    if not 1 <= days <= MAX_BLOCK_DAYS:
        raise BadRequest(f"days must be between 1 and {MAX_BLOCK_DAYS}.")
    blocked = _worker_block(worker)
    details = {"days": days, "worker_id": worker.id}
    await audit.record(store, actor, "ipaddr.block_worker", "ipaddr", blocked, details, now=now)
    await counters.mark(KEY_PREFIX + blocked, days * 86_400, now)
    return IPTimeout(blocked, days * 86_400)


async def unblock_worker_ip(store: Store, counters: Counters, actor: Account, worker: WorkerInfo, now: float) -> bool:
    """Lift the block of the address ``worker`` last popped from; whether there was one."""
    _require_moderator(actor)
    blocked = _worker_block(worker)
    removed = await counters.unmark(KEY_PREFIX + blocked)
    details = {"worker_id": worker.id, "was_blocked": removed}
    await audit.record(store, actor, "ipaddr.unblock_worker", "ipaddr", blocked, details, now=now)
    return removed
