"""The benchmarks' HTTP side: a minimal keep-alive HTTP/1.1 client and ``Api``, which times calls into ``Stats``.

Why not httpx: the driver shares the machine's cores with the server and PostgreSQL, and httpx costs
1.5-2 ms of driver CPU per call (15-20 ms per job cycle), which on 2 cores caps what the driver can
generate well below 100 jobs/s whatever the server does. This client costs about 0.1 ms per call. It
speaks plain http only and reads Content-Length, chunked and close-delimited bodies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harness.stats import Stats

CLIENT_AGENT = "openhorde-bench:1:loopback"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
HTTP_TIMEOUT_S = 30.0
MAX_CHUNKS = 1_000_000  # a bound on any response's chunk count, so a broken peer cannot loop us forever
MAX_TRAILER_LINES = 100

Address = tuple[str, int]


def is_loopback(url: str) -> bool:
    """True when the URL's host is a loopback address (the benchmarks never leave the machine)."""
    return urlsplit(url).hostname in LOOPBACK_HOSTS


class TransportError(Exception):
    """A request failed below HTTP (connect, reset, timeout, bad framing)."""


class StaleConnection(Exception):
    """A reused keep-alive connection had been closed by the server."""


RAW_ERRORS = (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError)


@dataclass(eq=False)
class Connection:
    """One keep-alive HTTP/1.1 connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        """Close without waiting."""
        self.writer.close()

    def usable(self) -> bool:
        """False once the server closed it while it sat idle."""
        return not (self.reader.at_eof() or self.writer.is_closing())


@dataclass(frozen=True)
class ResponseHead:
    """Status and the framing headers of a response."""

    status: int
    length: int | None
    chunked: bool
    keep_alive: bool


def request_head(method: str, path: str, netloc: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """Request line and headers of an HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc}", f"Client-Agent: {CLIENT_AGENT}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response_head(raw: bytes) -> ResponseHead:
    """Parse the status line and headers (ValueError when malformed)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    length: int | None = None
    chunked = False
    keep_alive = version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key, value = name.strip().lower(), value.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding":
            chunked = "chunked" in value
        elif key == "connection":
            keep_alive = value != "close" if version == "HTTP/1.1" else value == "keep-alive"
    return ResponseHead(int(status_text), length, chunked, keep_alive)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """Read a chunked body, trailers included."""
    parts: list[bytes] = []
    for _ in range(MAX_CHUNKS):
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            for _ in range(MAX_TRAILER_LINES):
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    return b"".join(parts)
            raise ValueError("too many trailer lines")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    raise ValueError("too many chunks")


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[ResponseHead, bytes]:
    """Read one response; its head and body."""
    head = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return head, b""
    if head.chunked:
        return head, await read_chunked(reader)
    if head.length is not None:
        return head, await reader.readexactly(head.length)
    body = await reader.read()  # delimited by EOF
    return ResponseHead(head.status, len(body), False, False), body


class HttpClient:
    """A pool of keep-alive HTTP/1.1 connections to one server (and absolute loopback URLs, for uploads).

    ``connections`` bounds the requests in flight; a simulated actor needs one at a time, so a pool as
    large as the number of concurrent actors never makes them queue inside the driver."""

    def __init__(self, base_url: str, connections: int) -> None:
        parts = urlsplit(base_url)
        self.base: Address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.idle: dict[Address, list[Connection]] = {}
        self.live: set[Connection] = set()
        self.slots = asyncio.Semaphore(connections)

    def resolve(self, url: str) -> tuple[Address, str]:
        """(host, port) and request target of a path or absolute URL."""
        if url.startswith("/"):
            return self.base, url
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise TransportError("UnsupportedURL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return (parts.hostname, parts.port or 80), target

    async def connect(self, addr: Address, fresh: bool) -> tuple[Connection, bool]:
        """An idle connection to addr (reused=True) or, if none or ``fresh``, a new one."""
        pool = self.idle.setdefault(addr, [])
        while pool and not fresh:
            conn = pool.pop()
            if conn.usable():
                return conn, True
            self.discard(conn)
        reader, writer = await asyncio.open_connection(*addr)
        conn = Connection(reader, writer)
        self.live.add(conn)
        return conn, False

    def discard(self, conn: Connection) -> None:
        """Forget and close a connection in an unknown state."""
        self.live.discard(conn)
        conn.close()

    async def exchange(self, addr: Address, method: str, data: bytes, fresh: bool) -> tuple[int, bytes]:
        """Send on a pooled (or, if ``fresh``, a new) connection; status and body."""
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            conn, reused = await self.connect(addr, fresh)
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                conn.writer.write(data)
                head, body = await read_response(conn.reader, method)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            self.discard(conn)
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if reused and not partial:
                # The server closed an idle keep-alive connection as we reused it: nothing was processed.
                raise StaleConnection from exc
            raise
        except BaseException:
            self.discard(conn)
            raise
        if head.keep_alive:
            self.idle[addr].append(conn)
        else:
            self.discard(conn)
        return head.status, body

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send to a path (relative to the server) or a full URL; retry once on a fresh connection if a
        reused one was dead. Raises TransportError for anything below HTTP."""
        addr, target = self.resolve(url)
        data = request_head(method, target, f"{addr[0]}:{addr[1]}", headers or {}, body) + (body or b"")
        async with self.slots:
            try:
                try:
                    return await self.exchange(addr, method, data, fresh=False)
                except StaleConnection:
                    return await self.exchange(addr, method, data, fresh=True)
            except RAW_ERRORS as exc:
                raise TransportError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in list(self.live):
            self.discard(conn)
        self.idle.clear()


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, parsed JSON body (or None) and latency."""

    status: int
    data: Any
    ms: float

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def get(self, name: str) -> Any:
        """One key of a JSON object body, None when the body is not an object."""
        return self.data.get(name) if isinstance(self.data, dict) else None


def error_key(status: int, data: Any) -> str:
    """'<status> <rc>' for the error counters."""
    rc = data.get("rc") if isinstance(data, dict) else None
    return f"{status} {rc or '-'}"


def parse_json(raw: bytes) -> Any:
    """A body as JSON, or None."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def ms_since(start: float) -> float:
    """Milliseconds elapsed since a perf_counter() reading."""
    return (time.perf_counter() - start) * 1000.0


@dataclass
class ErrorLog:
    """Prints the first ``limit`` failed calls in full, for bug reports."""

    limit: int = 0
    shown: int = 0

    def show(self, method: str, url: str, sent: bytes | None, status: int, raw: bytes) -> None:
        """Print one failed call (request and response) while under the limit."""
        if self.shown >= self.limit:
            return
        self.shown += 1
        body = (sent or b"")[:300].decode(errors="replace")
        print(f"!! {method} {url} {body} -> {status} {raw[:500].decode(errors='replace')}", file=sys.stderr)


@dataclass(frozen=True)
class Api:
    """An HttpClient bound to a Stats object: every call is timed (2xx) or counted as an error."""

    http: HttpClient
    stats: Stats = field(default_factory=Stats)
    errlog: ErrorLog = field(default_factory=ErrorLog)

    def with_stats(self, stats: Stats) -> Api:
        """The same connections, recording into other stats (one Stats per phase or step)."""
        return Api(self.http, stats, self.errlog)

    async def call(
        self,
        name: str,
        method: str,
        url: str,
        *,
        apikey: str | None = None,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        record: bool = True,
    ) -> Reply | None:
        """One request; records its latency under ``name`` (2xx, if ``record``) or an error.

        ``body`` is sent as JSON, ``content`` as raw bytes. Returns None on a transport error, else the
        Reply (2xx or not). ``record=False`` lets the caller file the latency under a name it only knows
        from the answer (a pop with or without a job)."""
        headers = {}
        if apikey is not None:
            headers["apikey"] = apikey
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        try:
            status, raw = await self.http.request(method, url, headers, content)
        except TransportError as exc:
            self.stats.fail(name, f"exc {exc}")
            return None
        reply = Reply(status, parse_json(raw), ms_since(start))
        if not reply.ok:
            self.stats.fail(name, error_key(reply.status, reply.data))
            self.errlog.show(method, url, content if body is not None else None, status, raw)
        elif record:
            self.stats.add(name, reply.ms)
        return reply
