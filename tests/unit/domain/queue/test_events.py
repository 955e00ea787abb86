"""The event stream's cursor (``Last-Event-ID``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openhorde.domain.queue.events import StreamEvent, _Seen, parse_cursor


@settings(deadline=None)
@given(st.integers(0, 300), st.integers(0, 300))
def test_a_cursor_reads_back_what_a_stream_wrote(started: int, images: int) -> None:
    seen = _Seen(started={f"j{i}" for i in range(started)}, images={f"i{i}" for i in range(images)})
    assert parse_cursor(seen.cursor) == (started, images)


def test_foreign_or_missing_cursors_start_from_the_beginning() -> None:
    for text in (None, "", "abc", "1", "-1-2", "1-x", "1.2"):
        assert parse_cursor(text) is None


def test_only_done_and_faulted_end_a_stream() -> None:
    names = ("queued", "position", "started", "image", "done", "faulted")
    assert [StreamEvent(name, "0-0").final for name in names] == [False] * 4 + [True] * 2
