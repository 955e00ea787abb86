"""Lifecycles of requests and jobs: each is an enum plus one table of allowed transitions.

Request::

    queued ──(a) all images delivered──────────────▶ done
       │──(b) 3 jobs faulted, or nobody served it ─▶ faulted
       └──(c) the client cancelled ────────────────▶ cancelled

Job (one image handed to one worker)::

    processing ──(d) the worker submitted an image ─▶ done
        │──────(e) the worker reported a fault ─────▶ faulted
        └──────(f) the lease ran out ───────────────▶ expired

A faulted or expired job gives its image back to the request's queue (unless the request
has itself ended), so another worker can pick it up.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

from openhorde.errors import InvalidStateTransition
from openhorde.storage.lifecycle import Transition

QUEUE_TIMEOUT_SECONDS = 60 * 60
"""A queued request no worker touched for this long ends ``faulted`` (no worker could serve it)."""


class RequestState(StrEnum):
    """Where a request is in its life."""

    QUEUED = "queued"
    DONE = "done"
    FAULTED = "faulted"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    """Where a job is in its life."""

    PROCESSING = "processing"
    DONE = "done"
    FAULTED = "faulted"
    EXPIRED = "expired"


REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset({RequestState.DONE, RequestState.FAULTED, RequestState.CANCELLED}),
    RequestState.DONE: frozenset(),
    RequestState.FAULTED: frozenset(),
    RequestState.CANCELLED: frozenset(),
}

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PROCESSING: frozenset({JobState.DONE, JobState.FAULTED, JobState.EXPIRED}),
    JobState.DONE: frozenset(),
    JobState.FAULTED: frozenset(),
    JobState.EXPIRED: frozenset(),
}


def check_request_transition(current: RequestState, target: RequestState) -> None:
    """Raise ``InvalidStateTransition`` unless a request may go from ``current`` to ``target``."""
    if target not in REQUEST_TRANSITIONS[current]:
        raise InvalidStateTransition(f"A {current} request cannot become {target}.")


def check_job_transition(current: JobState, target: JobState) -> None:
    """Raise ``InvalidStateTransition`` unless a job may go from ``current`` to ``target``."""
    if target not in JOB_TRANSITIONS[current]:
        raise InvalidStateTransition(f"A {current} job cannot become {target}.")


@cache
def request_transition(target: RequestState) -> Transition:
    """The change into ``target`` with every state the table lets a request leave for it."""
    sources = tuple(sorted(state.value for state, targets in REQUEST_TRANSITIONS.items() if target in targets))
    return Transition(target.value, sources)


@cache
def job_transition(target: JobState) -> Transition:
    """The change into ``target`` with every state the table lets a job leave for it."""
    sources = tuple(sorted(state.value for state, targets in JOB_TRANSITIONS.items() if target in targets))
    return Transition(target.value, sources)
