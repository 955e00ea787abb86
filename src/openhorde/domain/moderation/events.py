"""Moderation evidence (``/operations/moderation/*``): prompt events, their notes, worker suspicion events,
and the moderators' overview.

What is recorded, and when (nothing on pop, submit or check; only when a filter or a countermeasure fires):

- a prompt event when the prompt filters refuse a new image request (``filter_rejection``; the flagged-account
  rewrite leaving nothing: ``model_rejection``, the reference's reasons) or rewrite it (``filter_replacement``,
  ``model_replacement``: ours, the reference keeps no event for a rewrite). A refusal is written in a unit of
  work of its own, as the request's rolls back; a rewrite with the request it belongs to. The caller's address
  is kept only as the keyed hash ``limits.client_ip_hash`` gives (shown as ``ip_subject_key``); raw addresses
  are never stored, so ``ipaddr`` is always empty.
- a worker suspicion event when a worker is put into maintenance for aborting too many jobs
  (``TOO_MANY_JOBS_ABORTED``, the reference's id 9). We score no suspicion, so nothing is paused for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum

from openhorde.config import Settings
from openhorde.domain.accounts import Account
from openhorde.domain.moderation import modes as horde_modes
from openhorde.errors import (
    CorruptPrompt,
    InvalidModerationEventID,
    InvalidModerationNote,
    InvalidModerationReason,
    InvalidOperationsCursor,
    InvalidOperationsLimit,
    ModerationEventNotFound,
    NotModerator,
)
from openhorde.storage.repositories.moderation_events import PausedWorker as PausedWorker  # the domain's too
from openhorde.storage.repositories.moderation_events import PromptEvent as PromptEvent
from openhorde.storage.repositories.moderation_events import PromptNote as PromptNote
from openhorde.storage.repositories.moderation_events import WorkerSuspicion as WorkerSuspicion
from openhorde.storage.store import Store

FILTER_REJECTION = "filter_rejection"
MODEL_REJECTION = "model_rejection"
FILTER_REPLACEMENT = "filter_replacement"
MODEL_REPLACEMENT = "model_replacement"
PROMPT_REASONS = (FILTER_REJECTION, MODEL_REJECTION, FILTER_REPLACEMENT, MODEL_REPLACEMENT)
REJECTED = "rejected"
REPLACED = "replaced"

MAX_NOTE_CHARS = 2000
"""The reference's limit on one moderator note."""
MAX_PROMPT_PAGE = 100
MAX_OPERATIONS_PAGE = 500
"""The reference's page bounds: prompt events carry long texts, so their pages are shorter."""


class Suspicion(IntEnum):
    """The AI Horde's suspicion reasons and their ids (its ``Suspicions``); we detect only some of them."""

    WORKER_NAME_LONG = 0
    WORKER_NAME_EXTREME = 1
    WORKER_PROFANITY = 2
    UNSAFE_IP = 3
    EXTREME_MAX_PIXELS = 4
    UNREASONABLY_FAST = 5
    USERNAME_LONG = 6
    USERNAME_PROFANITY = 7
    CORRUPT_PROMPT = 8
    TOO_MANY_JOBS_ABORTED = 9


@dataclass(frozen=True)
class PromptEvidence:
    """What a prompt event records about one screened request."""

    user_id: int
    request_id: str | None
    ip_hash: str | None
    models: list[str]
    reason: str
    submitted_prompt: str
    effective_prompt: str | None


class PromptRefused(Exception):
    """The filters refused a request: ``queue_request`` records ``evidence`` after the request's unit of work
    rolled back, then answers with ``error``."""

    def __init__(self, evidence: PromptEvidence, error: CorruptPrompt) -> None:
        super().__init__(error.message)
        self.evidence = evidence
        self.error = error


async def record_prompt(store: Store, evidence: PromptEvidence, now: float | None = None) -> int:
    """Record a prompt event; its id."""
    outcome = REJECTED if evidence.reason in (FILTER_REJECTION, MODEL_REJECTION) else REPLACED
    return await store.moderation_events.add_prompt_event(
        {
            "created_at": now or time.time(),
            "user_id": evidence.user_id,
            "request_id": evidence.request_id,
            "ip_hash": evidence.ip_hash,
            "models": evidence.models,
            "reason": evidence.reason,
            "outcome": outcome,
            "submitted_prompt": evidence.submitted_prompt,
            "effective_prompt": evidence.effective_prompt,
        }
    )


async def record_worker_suspicion(
    store: Store,
    worker_id: str,
    worker_name: str,
    user_id: int | None,
    suspicion: Suspicion,
    detail: str,
    now: float,
) -> None:
    """Record one suspicious thing a worker did."""
    await store.moderation_events.add_worker_suspicion(
        {
            "created_at": now,
            "worker_id": worker_id,
            "worker_name": worker_name,
            "user_id": user_id,
            "suspicion_id": int(suspicion),
            "reason": suspicion.name,
            "detail": detail,
        }
    )


def _require_moderator(actor: Account) -> None:
    if not horde_modes.is_moderator(actor):
        raise NotModerator("Only moderators can review moderation events.")


def _check_page(limit: int, before_id: int | None, maximum: int) -> None:
    if not 1 <= limit <= maximum:
        raise InvalidOperationsLimit(f"limit must be between 1 and {maximum}.")
    if before_id is not None and before_id < 1:
        raise InvalidOperationsCursor("before_id must be positive.")


@dataclass(frozen=True)
class PromptEventQuery:
    """The filters of a prompt event page (the reference's, less those on things we do not keep)."""

    limit: int = 50
    before_id: int | None = None
    event_id: int | None = None
    user_id: int | None = None
    reasons: tuple[str, ...] = ()
    ip_hash: str | None = None


async def prompt_events(store: Store, actor: Account, query: PromptEventQuery) -> list[PromptEvent]:
    """A page of prompt events, newest first (moderators only)."""
    _require_moderator(actor)
    _check_page(query.limit, query.before_id, MAX_PROMPT_PAGE)
    unknown = sorted(set(query.reasons) - set(PROMPT_REASONS))
    if unknown:
        raise InvalidModerationReason(f"Unknown moderation reason(s): {', '.join(unknown)}.")
    if query.event_id is not None and query.event_id < 1:
        raise InvalidModerationEventID("event_id must be positive.")
    return await store.moderation_events.prompt_events(
        query.limit, query.before_id, query.event_id, query.user_id, list(query.reasons), query.ip_hash
    )


async def add_note(store: Store, actor: Account, event_id: int, note: str, now: float | None = None) -> PromptNote:
    """Add a moderator's note to a prompt event; 404 when there is no such event."""
    _require_moderator(actor)
    if not note.strip() or len(note) > MAX_NOTE_CHARS or "\x00" in note:
        raise InvalidModerationNote(f"A note has 1 to {MAX_NOTE_CHARS} characters and no NUL characters.")
    stored = await store.moderation_events.add_note(event_id, actor.id, note, now or time.time())
    if stored is None:
        raise ModerationEventNotFound(f"There is no moderation event {event_id}.")
    return stored


async def worker_suspicions(
    store: Store,
    actor: Account,
    limit: int = 100,
    before_id: int | None = None,
    worker_id: str | None = None,
    user_id: int | None = None,
) -> list[WorkerSuspicion]:
    """A page of worker suspicion events, newest first (moderators only)."""
    _require_moderator(actor)
    _check_page(limit, before_id, MAX_OPERATIONS_PAGE)
    return await store.moderation_events.worker_suspicions(limit, before_id, worker_id, user_id)


def next_cursor(ids: list[int], limit: int) -> int | None:
    """The ``before_id`` of the next page: the last id of a full page, ``None`` after the last page."""
    return ids[-1] if ids and len(ids) == limit else None


@dataclass(frozen=True)
class Overview:
    """The moderators' overview: promotion settings and the paused workers."""

    promotion_threshold: float
    paused_workers: list[tuple[PausedWorker, bool]]
    """Each paused worker and whether it is online (checked in within ``worker_stale_seconds``)."""
    paused_workers_total: int


async def overview(
    store: Store, settings: Settings, actor: Account, limit: int = 100, now: float | None = None
) -> Overview:
    """The promotion threshold (kudos earned for automatic trust; 0 when only moderators trust) and the paused
    workers (moderators only). We keep no list of users eligible for or blocked from promotion: automatic
    trust is decided when a reward is paid (``kudos/escrow.py``)."""
    _require_moderator(actor)
    _check_page(limit, None, MAX_OPERATIONS_PAGE)
    workers, total = await store.moderation_events.paused_workers(limit)
    threshold = settings.economy.trust_after_kudos
    moment = now or time.time()
    stale = settings.queue.worker_stale_seconds
    return Overview(float(threshold or 0.0), [(w, moment - w.last_check_in_at < stale) for w in workers], total)
