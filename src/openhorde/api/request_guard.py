"""The request guard: refuses, before any route runs, what no route may be handed.

- A body over ``max_request_body_bytes``: refused with 413 at once when ``Content-Length`` says so; a body
  sent without one (chunked) is counted while it is read and cut off with 413 as soon as it passes the limit,
  so the server never holds more than the limit of anyone's body. After answering, the guard reads and drops
  what the client still sends for a few seconds (at most ``DISCARD_MAX_BYTES``) before the connection closes:
  a client that writes its whole body before reading (requests, httpx) would otherwise find the connection
  reset and never see the 413.
- A NUL character in the path, the query string (``%00``) or a header: no database stores it, so it is
  refused with 400. A lone surrogate cannot arrive there: percent-escapes are decoded with replacement.

Bodies are not read for text here: JSON bodies are checked by the wire models (``WireModel``), and image
uploads (``PUT /blobs/...``) are binary and may hold any byte; they keep their own, smaller limit too.
A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it sees the body as it streams in, adds no task per
request and leaves long-lived event streams alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openhorde.api.errors import error_response
from openhorde.domain import text
from openhorde.errors import HordeError, InvalidCharacters, RequestTooLarge

_MAX_LENGTH_DIGITS = 18
"""A Content-Length with more digits than this is too large for any limit (and too long to read as a number)."""
DISCARD_SECONDS = 5.0
"""How long, after a refusal, the rest of the client's body is read and dropped before the connection closes."""
DISCARD_MAX_BYTES = 64 * 1024 * 1024
"""How much of the rest of a refused body is read and dropped at most."""


class RequestGuard:
    """Pure ASGI middleware: the body size limit and the NUL check of path, query string and headers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _unstorable_text_in_head(scope) or _declared_too_large(scope, self.max_body_bytes)
        if refusal is not None:
            await _refuse(refusal, receive, send)
            return
        await _LimitedBody(self.app, self.max_body_bytes)(scope, receive, send)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request bodies are limited to {limit} bytes.")


def _unstorable_text_in_head(scope: Scope) -> HordeError | None:
    """A NUL in the path, the query string or a header, as an error; None when there is none."""
    query: bytes = scope.get("query_string", b"")
    if not text.is_storable(scope["path"]) or b"\x00" in query or b"%00" in query:
        return InvalidCharacters("The path or query string holds a NUL character.")
    if b"\x00" in b"".join(itertools.chain.from_iterable(scope["headers"])):  # one C-level scan, not two per header
        return InvalidCharacters("A header holds a NUL character.")
    return None


def _declared_too_large(scope: Scope, limit: int) -> HordeError | None:
    """A ``Content-Length`` over the limit, as an error; None when it fits or is not given."""
    declared = (Headers(scope=scope).get("content-length") or "").strip()
    if not (declared.isascii() and declared.isdigit()):
        return None  # absent or malformed: the server refuses a malformed one itself; the body is counted anyway
    if len(declared) > _MAX_LENGTH_DIGITS or int(declared) > limit:
        return _too_large(limit)
    return None


async def _refuse(error: HordeError, receive: Receive, send: Send) -> None:
    """Answer ``error`` at once, drop what is left of the body for a while, then let the connection close."""
    response = error_response(error, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    # The whole answer goes out now, so a client reading while it sends (curl, a browser) can stop sending; the
    # response ends only after the discarding, so the server keeps reading until then.
    await send({"type": "http.response.body", "body": response.body, "more_body": True})
    await _discard_rest_of_body(receive)
    await send({"type": "http.response.body", "body": b""})


async def _discard_rest_of_body(receive: Receive) -> None:
    discarded = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DISCARD_SECONDS):
            while discarded <= DISCARD_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                discarded += len(message.get("body", b""))


class _LimitedBody:
    """One request: the app reads its body through a counter; past the limit, the guard's 413 is the answer."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self.answered = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_within_limit() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.exceeded = True
                    raise _too_large(self.limit)  # stops the reader, whatever it is (FastAPI, a route's stream)
            return message

        async def send_unless_cut_off(message: Message) -> None:
            if self.exceeded and not self.answered:
                return  # the app's answer to a body it could not finish (FastAPI says 400): ours replaces it
            self.answered = True
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_unless_cut_off)
        except Exception:
            if not self.exceeded or self.answered:
                raise
        if self.exceeded and not self.answered:
            await _refuse(_too_large(self.limit), receive, send)
