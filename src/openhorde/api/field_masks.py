"""``X-Fields``: the caller names the fields it wants of a JSON answer, as on the AI Horde.

A mask is a comma-separated list of field names, each optionally followed by a mask of its own in braces,
the whole optionally in braces too: ``id,name,kudos_details{accumulated}``. ``*`` keeps every field of its
level not named otherwise. A mask applies to an object and to each object of a list; a field the answer does
not have is left out, as a field missing from a model is when the reference server marshals it. Only
successful JSON answers are masked: errors keep ``{message, rc}`` whole.

A pure ASGI middleware: a call without the header goes through untouched, so the hot routes pay one header
lookup; event streams are never buffered.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openhorde.api.errors import error_response
from openhorde.errors import InvalidFieldMask

HEADER = "x-fields"
MAX_MASK_LENGTH = 2_000

Mask = dict[str, "Mask | None"]
"""Field name → the mask of its value (None: the whole value)."""


def parse_mask(text: str) -> Mask:
    """``"a,b{c,d}"`` → ``{"a": None, "b": {"c": None, "d": None}}``; ``InvalidFieldMask`` on anything else."""
    if len(text) > MAX_MASK_LENGTH:
        raise InvalidFieldMask(f"Mask parse error: a mask is at most {MAX_MASK_LENGTH} characters long.")
    source = text.strip()
    if source.startswith("{") and source.endswith("}"):
        source = source[1:-1]
    mask, end = _parse_level(source, 0)
    if end != len(source):
        raise InvalidFieldMask(f"Mask parse error: unexpected '{source[end]}' at position {end} of {text!r}.")
    if not mask:
        raise InvalidFieldMask("Mask parse error: the mask names no field.")
    return mask


def _parse_level(source: str, position: int) -> tuple[Mask, int]:
    """The fields from ``position`` up to a closing brace or the end; returns them and where it stopped."""
    mask: Mask = {}
    name = ""
    while position < len(source):
        char = source[position]
        if char == "{":
            if not name.strip():
                raise InvalidFieldMask(f"Mask parse error: a nested mask needs a field name (position {position}).")
            nested, position = _parse_level(source, position + 1)
            if position >= len(source) or source[position] != "}":
                raise InvalidFieldMask("Mask parse error: a nested mask is not closed with '}'.")
            mask[name.strip()] = nested
            name = ""
        elif char == "}":
            break
        elif char == ",":
            if name.strip():
                mask[name.strip()] = None
            name = ""
        else:
            name += char
        position += 1
    if name.strip():
        mask[name.strip()] = None
    return mask, position


def apply_mask(value: Any, mask: Mask) -> Any:
    """The part of a JSON value that ``mask`` keeps."""
    if isinstance(value, list):
        return [apply_mask(item, mask) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for name, nested in mask.items():
        if name != "*" and name in value:
            kept[name] = value[name] if nested is None else apply_mask(value[name], nested)
    if "*" in mask:
        kept.update({name: item for name, item in value.items() if name not in kept})
    return kept


class FieldMasks:
    """Pure ASGI middleware: masks successful JSON answers of calls that send ``X-Fields``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get(HEADER) if scope["type"] == "http" else None
        if not header or not header.strip():
            await self.app(scope, receive, send)
            return
        try:
            mask = parse_mask(header)
        except InvalidFieldMask as exc:
            await error_response(exc)(scope, receive, send)
            return
        await _MaskedAnswer(mask, send).run(self.app, scope, receive)


class _MaskedAnswer:
    """Holds a JSON answer back until its body is complete, then sends its masked form."""

    def __init__(self, mask: Mask, send: Send) -> None:
        self.mask = mask
        self.send = send
        self.start: Message | None = None
        self.body = bytearray()
        self.masking = False

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        await app(scope, receive, self.on_message)

    async def on_message(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = Headers(raw=message["headers"])
            is_json = headers.get("content-type", "").startswith("application/json")
            self.masking = 200 <= message["status"] < 300 and is_json
            if self.masking:
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.masking:
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                await self._send_masked()
            return
        await self.send(message)

    async def _send_masked(self) -> None:
        assert self.start is not None
        try:
            body = json.dumps(apply_mask(json.loads(self.body), self.mask), separators=(",", ":")).encode()
        except ValueError:  # not JSON after all: send it as it came
            body = bytes(self.body)
        headers = MutableHeaders(raw=list(self.start["headers"]))
        headers["content-length"] = str(len(body))
        await self.send({**self.start, "headers": headers.raw})
        await self.send({"type": "http.response.body", "body": body})
