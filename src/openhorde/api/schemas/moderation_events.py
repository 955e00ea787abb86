"""Answers of ``/operations/moderation/*`` (the AI Horde's shapes) and the body of a note.

Fields for things we do not keep are sent with the reference's empty values: ``worker_id``,
``proxied_account``, ``origin_text`` and ``moderation_prompt`` are empty, ``ipaddr`` is always empty (we store
only a keyed hash of the address, sent as ``ip_subject_key``), the prompt text is kept inline rather than in
an object store (``text_state`` ``"inline"``, no ``text_url`` or ``text_sha256``), nothing is redacted or
anonymised and no retention policy applies (``retention`` is null). The overview's suspicion thresholds are 0
and its user lists empty: we score no suspicion and keep no promotion queue.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel


def wire_time(moment: float) -> str:
    """The reference's timestamp form, ``2021-01-01T00:00:00Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PromptNoteInput(WireModel):
    note: str | None = Field(default=None, max_length=100_000, description="1 to 2000 characters.")


class PromptNoteOut(ResponseModel):
    id: int
    author_id: int | None
    note: str
    created: str


class PromptEventOut(ResponseModel):
    id: int
    created: str
    user_id: int | None
    request_id: str | None
    worker_id: str | None = None
    proxied_account: str | None = None
    ipaddr: str | None = None
    ip_subject_key: str | None = Field(description="A keyed hash of the caller's address; we keep no address.")
    origin_text: str | None = None
    models: list[str]
    reason: str = Field(description="filter_rejection, model_rejection, filter_replacement or model_replacement.")
    outcome: str = Field(description="rejected or replaced.")
    submitted_prompt: str
    moderation_prompt: str | None = None
    effective_prompt: str | None
    text_state: str = "inline"
    text_url: str | None = None
    text_sha256: str | None = None
    text_chars: int
    text_truncated: bool = False
    text_redacted: bool = False
    ipaddr_redacted: bool = False
    anonymized: bool = False
    hold_source: str | None = None
    notes: list[PromptNoteOut]


class PromptEventsOut(ResponseModel):
    events: list[PromptEventOut]
    next_cursor: int | None = Field(description="The before_id of the next page; null after the last.")
    retention: dict[str, int] | None = None


class WorkerSuspicionEventOut(ResponseModel):
    id: int
    created: str
    worker_id: str
    worker_name: str
    user_id: int | None
    suspicion_id: int
    reason: str
    detail: str


class WorkerSuspicionEventsOut(ResponseModel):
    events: list[WorkerSuspicionEventOut]
    next_cursor: int | None


class SuspicionReasonOut(ResponseModel):
    id: int
    name: str
    description: str
    count: int


class PausedWorkerOut(ResponseModel):
    type: str
    name: str
    id: str
    online: bool
    owner_id: int
    owner: str
    last_check_in: str
    maintenance_mode: bool
    maintenance_msg: str | None
    suspicious: int = 0
    suspicion_reasons: list[SuspicionReasonOut] = Field(default_factory=list)
    owner_suspicion: int = 0
    owner_trusted: bool
    owner_flagged: bool
    requests_fulfilled: int
    aborted_jobs: int
    bridge_agent: str
    models: list[str]
    contact: str | None


class PromotionUserOut(ResponseModel):
    id: int
    username: str


class ModerationOverviewOut(ResponseModel):
    promotion_threshold: float
    suspicion_threshold: int = 0
    worker_suspicion_threshold: int = 0
    promotion_blocked_users: list[PromotionUserOut] = Field(default_factory=list)
    promotion_eligible_users: list[PromotionUserOut] = Field(default_factory=list)
    paused_workers: list[PausedWorkerOut]
    paused_workers_total: int
