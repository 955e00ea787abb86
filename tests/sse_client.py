"""A small server-sent-events reader for tests: reads a stream in a background task."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx


@dataclass
class SseEvent:
    name: str
    id: str | None
    data: dict[str, Any]


class EventReader:
    """``async with EventReader(client, url) as reader``: ``await reader.next()`` for each event; ``closed``
    is set when the server ended the stream. ``comments`` counts keep-alive comments."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> None:
        self.client, self.url, self.headers = client, url, headers or {}
        self.events: asyncio.Queue[SseEvent | None] = asyncio.Queue()
        self.status_code: int | None = None
        self.content_type = ""
        self.response_headers = httpx.Headers()
        self.comments = 0
        self.opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async with self.client.stream("GET", self.url, headers=self.headers, timeout=60) as response:
                self.status_code = response.status_code
                self.content_type = response.headers.get("content-type", "")
                self.response_headers = response.headers
                self.opened.set()
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                    elif line == "":
                        if "event" in fields:
                            data = json.loads(fields.get("data", "{}"))
                            await self.events.put(SseEvent(fields["event"], fields.get("id"), data))
                        fields = {}
                    else:
                        key, _, value = line.partition(":")
                        fields[key] = value.removeprefix(" ")
        finally:
            self.opened.set()
            await self.events.put(None)

    async def __aenter__(self) -> EventReader:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.opened.wait(), timeout=10)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def next(self, seconds: float = 10) -> SseEvent | None:
        """The next event; ``None`` once the stream has ended."""
        return await asyncio.wait_for(self.events.get(), timeout=seconds)

    async def until_end(self, seconds: float = 15, skip: tuple[str, ...] = ("position",)) -> list[SseEvent]:
        """Every further event (but those named in ``skip``) until the server closes the stream."""
        found: list[SseEvent] = []
        while (event := await self.next(seconds)) is not None:
            if event.name not in skip:
                found.append(event)
        return found

    async def next_named(self, seconds: float = 10, skip: tuple[str, ...] = ("position",)) -> SseEvent | None:
        """The next event not named in ``skip``."""
        while (event := await self.next(seconds)) is not None and event.name in skip:
            pass
        return event
