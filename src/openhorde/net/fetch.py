"""Outbound HTTP on a stranger's behalf: every connection goes to an address that was checked first.

``guarded_client`` is an ``httpx.AsyncClient`` whose connections resolve their host once, check every
resolved address against an ``AddressPolicy`` and connect to the address that was checked, so a name that
resolves to a public address for the check and to a private one a moment later (DNS rebinding) gains
nothing. Redirects are followed by httpx, each hop opening its own checked connection. No proxy from the
environment is used: a proxy would resolve the name itself, out of our sight.

``download`` reads one URL under a single deadline and a size cap; a server that drips its answer one byte
at a time is cut off at the deadline however often it sends.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import typing

import httpcore
import httpx

from openhorde.net.addresses import AddressNotAllowed, AddressPolicy


class DownloadFailed(Exception):
    """A download did not produce a body: an HTTP error status, a network error or the deadline."""


class DownloadTooLarge(Exception):
    """A download's body is larger than its cap."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"larger than {max_bytes} bytes")


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows, by number."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # resolve() returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed(path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings with the CA bundle, made once per process: loading the bundle cost about 20 ms, and each
    server start made two."""
    return httpx.create_ssl_context(trust_env=False)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses ``_CheckedBackend``."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(verify=_tls_context(), trust_env=False)
        # httpx has no public way to hand its pool a network backend, so the pool it made is replaced by the
        # same kind of pool on the checked backend (tests/security/test_outbound.py fails if this stops working).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(policy),
        )


def guarded_client(
    policy: AddressPolicy, max_redirects: int, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """An HTTP client that reaches only the addresses ``policy`` allows, following up to ``max_redirects``."""
    return httpx.AsyncClient(
        transport=_CheckedTransport(policy),
        trust_env=False,
        follow_redirects=max_redirects > 0,
        max_redirects=max_redirects,
        headers=headers,
    )


async def download(client: httpx.AsyncClient, url: str, max_bytes: int, deadline_seconds: float) -> bytes:
    """The body of ``GET url``: all of it within ``deadline_seconds`` (connecting and redirects included).

    Raises ``AddressNotAllowed`` / ``HostNotFound`` for a refused or unknown host, ``DownloadTooLarge`` past
    ``max_bytes`` (declared or read) and ``DownloadFailed`` for anything else.
    """
    try:
        async with asyncio.timeout(deadline_seconds):
            return await _read_capped(client, url, max_bytes)
    except TimeoutError as exc:
        raise DownloadFailed(f"it took longer than {deadline_seconds:g} s") from exc
    except httpx.TooManyRedirects as exc:
        raise DownloadFailed("it redirected too many times") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise DownloadFailed(f"{type(exc).__name__}: {exc}") from exc


async def _read_capped(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise DownloadFailed(f"the server answered HTTP {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise DownloadTooLarge(max_bytes)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise DownloadTooLarge(max_bytes)
        return bytes(body)
