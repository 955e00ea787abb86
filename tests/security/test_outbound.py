"""No server-side request forgery: source images and webhooks reach public addresses only.

Every spelling of a loopback or private address is refused, names that resolve to one too; redirects are
checked hop by hop; the connection goes to the address that was checked. The HTTP tests run on SQLite
only: the database plays no part in what the server fetches.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from sqlalchemy import func, select

from openhorde.net.addresses import AddressNotAllowed, AddressPolicy, HostNotFound
from openhorde.net.fetch import DownloadFailed, download, guarded_client
from openhorde.storage.tables import Request
from tests.live_server import Horde
from tests.security.origin import serving_origin

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "0",
    "0.0.0.0",
    "[::]",
    "localhost",
]
"""Ways to write this machine in a URL; each reaches a server on 127.0.0.1 if nothing stops it."""

OTHER_FORBIDDEN = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[fe80::1]",
    "[fc00::1]",
    "[ff02::1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::1]",
    "[::ffff:10.0.0.1]",
]
"""Private, link-local (cloud metadata), shared, multicast, reserved, and IPv6 forms that embed such IPv4."""


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_FORBIDDEN)
async def test_the_policy_refuses_every_spelling_of_a_non_public_address(host: str) -> None:
    with pytest.raises(AddressNotAllowed):
        await AddressPolicy().resolve(host, 80)


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]"])
async def test_the_policy_lets_public_addresses_through(host: str) -> None:
    assert await AddressPolicy().resolve(host, 443)


async def test_an_unknown_name_is_not_found() -> None:
    with pytest.raises(HostNotFound):
        await AddressPolicy().resolve("no-such-host.invalid", 80)


async def test_allowing_private_addresses_lets_loopback_through() -> None:
    assert await AddressPolicy(allow_private=True).resolve("127.1", 80) == ["127.0.0.1"]


async def _queued_requests(horde: Horde) -> int:
    async with horde.db.unit_of_work() as session:
        return int(await session.scalar(select(func.count()).select_from(Request)) or 0)


async def test_source_images_at_internal_addresses_are_refused_before_anything_is_fetched_or_queued(
    horde: Horde,
) -> None:
    account = await horde.register("prober")
    async with serving_origin() as origin:
        for field in ("source_image", "source_mask"):
            for host in LOOPBACK_SPELLINGS:
                body: dict[str, Any] = {"source_image": origin.url("/image").replace("127.0.0.1", host)}
                if field == "source_mask":
                    body = {"source_image": _tiny_base64(), "source_mask": body["source_image"]}
                answer = await horde.generate(account, source_processing="inpainting", **body)
                assert answer.status_code == 400, (host, answer.text)
                assert answer.json()["rc"] == "SourceImageUrlInvalid"
                # httpx itself refuses some odd spellings ("0177.0.0.1") as invalid URLs: refused all the same.
                assert any(why in answer.json()["message"] for why in ("public addresses", "Invalid"))
        assert origin.hits == [], "a refused URL was fetched"
    assert await _queued_requests(horde) == 0


async def test_webhooks_at_internal_addresses_are_refused_before_anything_is_queued(horde: Horde) -> None:
    account = await horde.register("prober")
    for host in [*LOOPBACK_SPELLINGS, "10.0.0.1", "169.254.169.254", "[fd00::1]"]:
        answer = await horde.generate(account, webhook=f"http://{host}:8080/hook")
        assert answer.status_code == 400, (host, answer.text)
        assert answer.json()["rc"] == "ValidationError"
    assert await _queued_requests(horde) == 0


@pytest.fixture
def horde_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", {}))


@pytest.mark.parametrize("horde_settings", [{"allow_private_addresses": True}], indirect=True)
async def test_a_household_horde_may_allow_its_own_network(horde: Horde) -> None:
    account = await horde.register("household")
    async with serving_origin() as origin:
        answer = await horde.generate(account, source_image=origin.url("/image"), source_processing="img2img")
        assert answer.status_code == 202, answer.text
        assert [hit.path for hit in origin.hits] == ["/image"]


def _tiny_base64() -> str:
    import base64

    from tests.live_server import webp_bytes

    return base64.b64encode(webp_bytes()).decode()


class OnlyThisAddress(AddressPolicy):
    """A policy that treats one loopback address as public, so redirects and resolution can be tested here."""

    def __init__(self, allowed: str) -> None:
        super().__init__()
        object.__setattr__(self, "allowed", allowed)

    def check(self, host: str, address: str) -> None:
        if address != self.allowed:  # type: ignore[attr-defined]
            raise AddressNotAllowed(host, address)


async def test_each_redirect_hop_is_checked() -> None:
    async with serving_origin("127.0.0.1") as allowed, serving_origin("127.0.0.2") as internal:
        client = guarded_client(OnlyThisAddress("127.0.0.1"), max_redirects=3)
        async with client:
            bounced = allowed.url("/to?url=") + internal.url("/image")
            with pytest.raises(AddressNotAllowed):
                await download(client, bounced, 1_000_000, 5)
            assert internal.hits == []
            assert await download(client, allowed.url("/redirect/2"), 1_000_000, 5) == allowed.image


async def test_at_most_the_configured_number_of_redirects_is_followed() -> None:
    async with serving_origin() as origin, guarded_client(OnlyThisAddress("127.0.0.1"), max_redirects=3) as client:
        assert await download(client, origin.url("/redirect/2"), 1_000_000, 5) == origin.image
        with pytest.raises(DownloadFailed, match="redirected too many times"):
            await download(client, origin.url("/redirect/3"), 1_000_000, 5)


async def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that answers a public address for the check and a private one a moment later (DNS rebinding)
    must not reach the private one: the name is looked up once and the checked address is connected to."""
    async with serving_origin("127.0.0.1") as checked:
        answers = iter(["127.0.0.1", "127.0.0.2"])
        lookups: list[str] = []

        async def rebinding_dns(host: str, port: Any, **_kwargs: Any) -> list[Any]:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), int(port)))]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding_dns)
        async with guarded_client(OnlyThisAddress("127.0.0.1"), max_redirects=0) as client:
            url = f"http://rebinding.test:{checked.port}/image"
            assert await download(client, url, 1_000_000, 5) == checked.image
        assert lookups == ["rebinding.test"]
        assert [hit.host for hit in checked.hits] == [f"rebinding.test:{checked.port}"]


async def test_a_body_over_the_cap_is_refused() -> None:
    from openhorde.net.fetch import DownloadTooLarge

    async with serving_origin() as origin, guarded_client(OnlyThisAddress("127.0.0.1"), max_redirects=0) as client:
        with pytest.raises(DownloadTooLarge):
            await download(client, origin.url("/image"), 10, 5)
