"""Which network addresses the server may connect to when a client hands it a URL.

A source image URL or a webhook makes the server open a connection on a stranger's behalf. On a public
horde that must never reach the server's own machine or network (loopback, private ranges, link-local
addresses such as a cloud's metadata service), whatever spelling the URL uses: ``127.1``, ``2130706433``,
``0x7f000001``, ``0``, ``[::ffff:127.0.0.1]`` and names that resolve to such addresses all end up as the
same numbers once resolved, so the check runs on resolved addresses only, never on the text of the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: its addresses carry an IPv4 address in their last 32 bits."""


class AddressNotAllowed(Exception):
    """A URL's host is, or resolves to, an address the server may not connect to."""

    def __init__(self, host: str, address: str | None = None) -> None:
        self.host = host
        self.address = address
        shown = host if address is None or address == host else f"{host} ({address})"
        super().__init__(f"{shown} is not a public internet address")


class HostNotFound(Exception):
    """A URL's host name does not resolve."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"{host} does not resolve to any address")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is an ordinary public unicast address.

    Refused: loopback, private, shared (carrier-grade NAT), link-local, multicast, unspecified, reserved and
    documentation ranges, and IPv6 addresses that embed any of those IPv4 addresses.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:  # the packets end up at the IPv4 address, so that is what counts
            return is_public(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class AddressPolicy:
    """Where outbound connections may go: public addresses only, unless the operator allows private ones."""

    allow_private: bool = False

    def check(self, host: str, address: str) -> None:
        """Raise ``AddressNotAllowed`` unless ``address`` (numeric, resolved for ``host``) may be reached."""
        if self.allow_private:
            return
        try:
            parsed = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
        except ValueError as exc:
            raise AddressNotAllowed(host, address) from exc
        if not is_public(parsed):
            raise AddressNotAllowed(host, address)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The numeric addresses of ``host``, each checked; refuses the host if any of them is not allowed.

        Refusing the whole name when one of its addresses is private leaves no way to steer the connection
        to the private one.
        """
        loop = asyncio.get_running_loop()
        bare = host.strip("[]")
        try:
            infos = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise HostNotFound(host) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise HostNotFound(host)
        for address in addresses:
            self.check(host, address)
        return addresses
