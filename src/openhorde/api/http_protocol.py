"""uvicorn's HTTP protocol (httptools) with a response's writes joined: one send per answer, not two.

uvicorn writes a response's status line and headers as soon as the app starts the response, then its body in a
second write: two system calls, and on loopback or a LAN two TCP segments (each waking the peer), for an answer
that fits in one. A horde's traffic is such small answers, and the two sends were 45% of a heartbeat's CPU (py-spy,
GIL held). Here the writes made during one turn of the event loop are joined and sent as it ends, so a response
written in one go (headers and body, as every JSON answer is) leaves in one send; a streamed one still leaves as
its chunks come, a loop turn later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _JoiningTransport:
    """A transport's stand-in that holds the writes of one event-loop turn and sends them together."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written before the close still goes out, as with the transport itself
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JoinedWritesHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` on a ``_JoiningTransport`` (pass it as uvicorn's ``http``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        joining: Any = _JoiningTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(joining)
