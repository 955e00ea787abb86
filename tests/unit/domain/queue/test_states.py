"""``domain.queue.states``: every allowed transition passes, every other one raises a ``HordeError``."""

from __future__ import annotations

import itertools

import pytest

from openhorde.domain.queue.states import (
    JOB_TRANSITIONS,
    REQUEST_TRANSITIONS,
    JobState,
    RequestState,
    check_job_transition,
    check_request_transition,
)
from openhorde.errors import HordeError, InvalidStateTransition

ALLOWED_REQUEST = [(a, b) for a, targets in REQUEST_TRANSITIONS.items() for b in sorted(targets)]
ALLOWED_JOB = [(a, b) for a, targets in JOB_TRANSITIONS.items() for b in sorted(targets)]
FORBIDDEN_REQUEST = [pair for pair in itertools.product(RequestState, repeat=2) if pair not in ALLOWED_REQUEST]
FORBIDDEN_JOB = [pair for pair in itertools.product(JobState, repeat=2) if pair not in ALLOWED_JOB]


def test_tables_cover_every_state() -> None:
    assert set(REQUEST_TRANSITIONS) == set(RequestState)
    assert set(JOB_TRANSITIONS) == set(JobState)
    assert ALLOWED_REQUEST and ALLOWED_JOB and FORBIDDEN_REQUEST and FORBIDDEN_JOB


def test_invalid_state_transition_is_a_horde_error() -> None:
    assert issubclass(InvalidStateTransition, HordeError)


@pytest.mark.parametrize(("current", "target"), ALLOWED_REQUEST, ids=str)
def test_allowed_request_transition_passes(current: RequestState, target: RequestState) -> None:
    check_request_transition(current, target)


@pytest.mark.parametrize(("current", "target"), FORBIDDEN_REQUEST, ids=str)
def test_forbidden_request_transition_raises(current: RequestState, target: RequestState) -> None:
    with pytest.raises(InvalidStateTransition) as caught:
        check_request_transition(current, target)
    assert caught.value.to_body()["rc"] == "InvalidStateTransition"


@pytest.mark.parametrize(("current", "target"), ALLOWED_JOB, ids=str)
def test_allowed_job_transition_passes(current: JobState, target: JobState) -> None:
    check_job_transition(current, target)


@pytest.mark.parametrize(("current", "target"), FORBIDDEN_JOB, ids=str)
def test_forbidden_job_transition_raises(current: JobState, target: JobState) -> None:
    with pytest.raises(InvalidStateTransition) as caught:
        check_job_transition(current, target)
    assert caught.value.to_body()["rc"] == "InvalidStateTransition"


def test_ended_states_are_final() -> None:
    for state in (RequestState.DONE, RequestState.FAULTED, RequestState.CANCELLED):
        assert REQUEST_TRANSITIONS[state] == frozenset()
    for job_state in (JobState.DONE, JobState.FAULTED, JobState.EXPIRED):
        assert JOB_TRANSITIONS[job_state] == frozenset()
