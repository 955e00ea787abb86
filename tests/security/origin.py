"""A scripted HTTP origin on loopback for the outbound-fetch tests: serves an image, redirects, or drips.

Each path is a route: ``/image`` answers a small WebP; ``/redirect/N`` redirects to ``/redirect/N-1`` and
``/redirect/0`` to ``/image``; ``/to?url=...`` redirects to that URL; ``/drip`` promises a large body and
sends one byte every ``drip_seconds``. Every request is recorded (path and Host header), so a test can
show that a refused URL was never fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.live_server import webp_bytes


@dataclass
class Hit:
    path: str
    host: str


@dataclass
class Origin:
    host: str = "127.0.0.1"
    port: int = 0
    drip_seconds: float = 0.5
    hits: list[Hit] = field(default_factory=list)
    dripping: int = 0
    """Drip answers in progress right now."""
    image: bytes = field(default_factory=webp_bytes)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        target = head[0].split(" ")[1]
        headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in head[1:] if ":" in line)
        }
        self.hits.append(Hit(target, headers.get("host", "")))
        parts = urlsplit(target)
        try:
            if parts.path == "/image":
                await self._answer(writer, 200, self.image, "image/webp")
            elif parts.path.startswith("/redirect/"):
                left = int(parts.path.rsplit("/", 1)[1])
                await self._redirect(writer, "/image" if left == 0 else f"/redirect/{left - 1}")
            elif parts.path == "/to":
                await self._redirect(writer, parse_qs(parts.query)["url"][0])
            elif parts.path == "/drip":
                await self._drip(writer)
            else:
                await self._answer(writer, 404, b"no", "text/plain")
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, body: bytes, kind: str) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _redirect(self, writer: asyncio.StreamWriter, location: str) -> None:
        writer.write(
            f"HTTP/1.1 302 X\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        self.dripping += 1
        try:
            writer.write(b"HTTP/1.1 200 X\r\ncontent-type: image/webp\r\ncontent-length: 100000\r\n\r\n")
            for _ in range(100000):
                await writer.drain()
                await asyncio.sleep(self.drip_seconds)
                writer.write(b"R")
        finally:
            self.dripping -= 1


@contextlib.asynccontextmanager
async def serving_origin(host: str = "127.0.0.1", drip_seconds: float = 0.5) -> AsyncIterator[Origin]:
    """An ``Origin`` listening on ``host`` (a free port) until the block ends."""
    origin = Origin(host=host, drip_seconds=drip_seconds)
    server = await asyncio.start_server(origin.handle, host, 0)
    origin.port = server.sockets[0].getsockname()[1]
    try:
        yield origin
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
