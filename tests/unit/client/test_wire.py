"""Answers parsed leniently: missing optional fields read as empty, the wrong shape is a ``WireError``."""

from __future__ import annotations

import pytest

from openhorde.client.wire import Generation, ModelStatus, Progress, QueuedRequest, RequestStatus, UserInfo, WireError


def test_a_queued_request_keeps_its_warnings_with_their_codes() -> None:
    queued = QueuedRequest.from_wire(
        {"id": "abc", "kudos": 9, "message": "m", "warnings": [{"code": "NoAvailableWorker", "message": "Nobody."}]}
    )
    assert queued == QueuedRequest("abc", 9.0, "m", ("Nobody. (NoAvailableWorker)",))


def test_missing_counters_read_as_zero_and_a_fault_reason_is_optional() -> None:
    progress = Progress.from_wire({"done": False})
    assert (progress.finished, progress.queue_position, progress.is_possible, progress.fault_reason) == (0, 0, True, "")
    assert Progress.from_wire({"done": True, "faulted": True, "fault_reason": "3 jobs failed"}).fault_reason


def test_a_generation_is_censored_by_its_flag_or_its_state() -> None:
    assert Generation.from_wire({"id": "g", "img": "x", "seed": "1", "censored": True}).censored
    assert Generation.from_wire({"id": "g", "img": "x", "seed": "1", "state": "censored"}).censored
    assert not Generation.from_wire({"id": "g", "img": "x", "seed": 7}).censored


def test_a_status_carries_its_generations() -> None:
    status = RequestStatus.from_wire({"done": True, "finished": 1, "generations": [{"id": "g", "seed": 3}]})
    assert status.finished == 1 and status.generations[0].seed == "3"


@pytest.mark.parametrize(
    ("parse", "data"),
    [
        (Progress.from_wire, []),
        (Progress.from_wire, {"finished": 1}),
        (Progress.from_wire, {"done": False, "finished": "many"}),
        (QueuedRequest.from_wire, {"kudos": 3}),
        (UserInfo.from_wire, {"kudos": 3}),
        (ModelStatus.from_wire, "stable_diffusion"),
    ],
)
def test_the_wrong_shape_is_a_wire_error(parse: object, data: object) -> None:
    with pytest.raises(WireError):
        parse(data)  # type: ignore[operator]
