"""``Prefer: wait`` parsing and the ``text/event-stream`` framing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from openhorde.api import push
from openhorde.domain.queue.events import RequestFollower, StartedJob, StreamEvent


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("respond-async", None),
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ("return=minimal; wait=7", 7),
        ("WAIT = 3", 3),
        ('wait="4"', 4),
        ("wait=0", None),
        ("wait=500", 60),
        ("nowait=5", None),
    ],
)
def test_prefer_wait_is_read_and_capped(header: str | None, expected: int | None) -> None:
    assert push.requested_wait(header, 60) == expected


def test_prefer_wait_can_be_turned_off() -> None:
    assert push.requested_wait("wait=5", 0) is None


def test_an_event_is_framed_with_its_id_name_and_json_data() -> None:
    job = StartedJob(job_id="j1", worker_id="w1", worker_name="gpu", model="stable_diffusion")
    text = push.render(StreamEvent("started", "1-0", job=job))
    assert text.endswith("\n\n")
    lines = text.strip().split("\n")
    assert lines[:2] == ["id: 1-0", "event: started"]
    assert json.loads(lines[2].removeprefix("data: ")) == {
        "id": "j1",
        "worker_id": "w1",
        "worker_name": "gpu",
        "model": "stable_diffusion",
    }


def test_a_vanished_request_is_reported_as_faulted_with_a_reason() -> None:
    text = push.render(StreamEvent("faulted", "0-0", reason="gone"))
    assert json.loads(text.split("data: ")[1]) == {"done": False, "faulted": True, "fault_reason": "gone"}


class _QuietFollower:
    """Three quiet polls, then the end."""

    async def events(self, request_id: str, last_event_id: str | None) -> AsyncIterator[StreamEvent | None]:
        for _ in range(3):
            yield None
        yield StreamEvent("done", "0-0", reason=None)


async def test_quiet_polls_become_keep_alive_comments_after_the_interval() -> None:
    follower = cast(RequestFollower, _QuietFollower())
    chunks: list[Any] = [chunk async for chunk in push.sse(follower, "r", None, keepalive=0.0)]
    assert chunks[0] == "retry: 2000\n\n"
    assert chunks[1:4] == [": keep-alive\n\n"] * 3
    assert chunks[4].startswith("id: 0-0\nevent: done\n")
    rare = [chunk async for chunk in push.sse(follower, "r", None, keepalive=3600.0)]
    assert ": keep-alive\n\n" not in rare
