"""Who is calling: the connecting address, or the client a trusted reverse proxy names in ``X-Forwarded-For``.

Per-address limits (rate limits, the anonymous queue, IP timeouts) are only as good as the address they
count. ``X-Forwarded-For`` is a header anyone can send, so it is believed only from proxies the operator
lists in ``trusted_proxies`` (none by default). Each proxy appends the address it received the request from;
reading the header from its right end and skipping the trusted proxies gives the first address that no
trusted party vouches for beyond: the client. Uvicorn's own proxy-header handling is turned off wherever we
start it (``proxy_headers=False``), so this is the one place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_trusted(setting: str) -> tuple[Network, ...]:
    """The networks in a ``trusted_proxies`` setting ("10.0.0.5, 192.168.0.0/16, ::1"); raises ``ValueError``."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip())


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted_setting: str) -> str | None:
    """The caller's address: ``peer`` (the connecting address) unless it is a trusted proxy, in which case the
    right-most address of ``X-Forwarded-For`` (all its header lines, in order) that is not a trusted proxy."""
    trusted = parse_trusted(trusted_setting)
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
