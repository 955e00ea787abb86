"""One send per answer: the writes of one event-loop turn leave together, and nothing written is lost on close."""

from __future__ import annotations

import asyncio
from typing import Any

from openhorde.api.http_protocol import _JoiningTransport


class RecordingTransport:
    """The transport calls the joining stand-in makes, as a list."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 7001) if name == "peername" else None


async def test_the_writes_of_one_loop_turn_leave_in_one_send() -> None:
    real = RecordingTransport()
    joining = _JoiningTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joining.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    joining.write(bytearray(b"{}"))
    assert real.sent == []  # held until the turn ends
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    joining.write(b"next")  # a later turn: a send of its own
    await asyncio.sleep(0)
    assert real.sent[-1] == b"next" and len(real.sent) == 2


async def test_close_sends_what_was_written_and_abort_drops_it() -> None:
    real = RecordingTransport()
    joining = _JoiningTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joining.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    joining.close()
    assert real.sent == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and real.closed
    await asyncio.sleep(0)
    assert len(real.sent) == 1  # the scheduled flush finds nothing left

    other = RecordingTransport()
    aborting = _JoiningTransport(other, asyncio.get_running_loop())  # type: ignore[arg-type]
    aborting.write(b"half an answer")
    aborting.abort()
    await asyncio.sleep(0)
    assert other.sent == [] and other.aborted
    assert aborting.get_extra_info("peername") == ("127.0.0.1", 7001)  # everything else is the transport's
