"""``openhorde generate``'s progress text."""

from __future__ import annotations

import pytest

from openhorde.client.generate import describe
from openhorde.client.wire import Progress


def progress(**changes: object) -> Progress:
    fields: dict[str, object] = {
        "finished": 0,
        "processing": 0,
        "restarted": 0,
        "waiting": 1,
        "done": False,
        "faulted": False,
        "wait_time": 7,
        "queue_position": 3,
        "kudos": 0.0,
        "is_possible": True,
    }
    return Progress(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({}, "queue position 3, eta 7s"),
        ({"processing": 2}, "generating (2 in progress), eta 7s"),
        ({"is_possible": False}, "waiting: no live worker can serve this request"),
        ({"done": True}, "done"),
        ({"done": True, "faulted": True}, "faulted"),
    ],
)
def test_the_progress_text_says_where_the_request_stands(changes: dict[str, object], text: str) -> None:
    assert describe(progress(**changes)) == text
