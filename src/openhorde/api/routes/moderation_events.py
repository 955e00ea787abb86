"""``/operations/moderation/*``: moderators review refused and rewritten prompts, note them, and read the
worker suspicion history and the paused workers. Answers carry ``Cache-Control: private, no-store``: they
hold prompts and account details."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.schemas.moderation_events import (
    ModerationOverviewOut,
    PausedWorkerOut,
    PromptEventOut,
    PromptEventsOut,
    PromptNoteInput,
    PromptNoteOut,
    WorkerSuspicionEventOut,
    WorkerSuspicionEventsOut,
    wire_time,
)
from openhorde.domain import limits
from openhorde.domain.moderation import events
from openhorde.domain.moderation.events import PromptEvent, PromptNote

DATABASE_INT_MAX = 2**63 - 1
"""Ids and cursors beyond a database integer are refused as bad input (400), not looked up; the rules on
smaller ones (``InvalidOperationsCursor``...) are the domain's."""

router = APIRouter(prefix="/operations/moderation", tags=["moderation"])

PRIVATE = "private, no-store"


def _note(note: PromptNote) -> PromptNoteOut:
    return PromptNoteOut(id=note.id, author_id=note.author_id, note=note.note, created=wire_time(note.created_at))


def _event(event: PromptEvent) -> PromptEventOut:
    return PromptEventOut(
        id=event.id,
        created=wire_time(event.created_at),
        user_id=event.user_id,
        request_id=event.request_id,
        ip_subject_key=event.ip_hash,
        models=event.models,
        reason=event.reason,
        outcome=event.outcome,
        submitted_prompt=event.submitted_prompt,
        effective_prompt=event.effective_prompt,
        text_chars=len(event.submitted_prompt),
        notes=[_note(n) for n in event.notes],
    )


@router.get("", response_model=ModerationOverviewOut, summary="Promotion threshold and paused workers (moderators)")
async def moderation_overview(
    store: StoreDep, ctx: ContextDep, user: ApiUser, response: Response, limit: Annotated[int, Query()] = 100
) -> ModerationOverviewOut:
    found = await events.overview(store, ctx.settings, user, limit)
    response.headers["Cache-Control"] = PRIVATE
    return ModerationOverviewOut(
        promotion_threshold=found.promotion_threshold,
        paused_workers=[
            PausedWorkerOut(
                type=w.worker_type,
                name=w.name,
                id=w.id,
                online=online,
                owner_id=w.user_id,
                owner=f"{w.owner_name}#{w.user_id}",
                last_check_in=wire_time(w.last_check_in_at),
                maintenance_mode=w.maintenance,
                maintenance_msg=w.maintenance_msg,
                owner_trusted=w.owner_trusted,
                owner_flagged=w.owner_flagged,
                requests_fulfilled=w.fulfilments,
                aborted_jobs=w.aborted_jobs,
                bridge_agent=w.bridge_agent,
                models=w.models,
                contact=w.contact,
            )
            for w, online in found.paused_workers
        ],
        paused_workers_total=found.paused_workers_total,
    )


@router.get("/prompts", response_model=PromptEventsOut, summary="Refused and rewritten prompts (moderators)")
async def prompt_events(
    store: StoreDep,
    ctx: ContextDep,
    user: ApiUser,
    response: Response,
    limit: Annotated[int, Query()] = 50,
    before_id: Annotated[int | None, Query(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)] = None,
    event_id: Annotated[int | None, Query(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)] = None,
    user_id: Annotated[int | None, Query(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)] = None,
    reason: Annotated[list[str] | None, Query(max_length=10)] = None,
    ipaddr: Annotated[str | None, Query(max_length=64, description="Events from this address.")] = None,
    ip_subject_key: Annotated[str | None, Query(max_length=64)] = None,
) -> PromptEventsOut:
    ip_hash = limits.client_ip_hash(ctx.secret, ipaddr.strip()) if ipaddr and ipaddr.strip() else ip_subject_key
    query = events.PromptEventQuery(limit, before_id, event_id, user_id, tuple(reason or ()), ip_hash)
    found = await events.prompt_events(store, user, query)
    response.headers["Cache-Control"] = PRIVATE
    return PromptEventsOut(
        events=[_event(e) for e in found], next_cursor=events.next_cursor([e.id for e in found], limit)
    )


@router.post(
    "/prompts/{event_id}/notes",
    response_model=PromptNoteOut,
    status_code=201,
    summary="Add a note to a prompt event (moderators)",
)
async def add_prompt_note(
    event_id: Annotated[int, Path(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)],
    body: PromptNoteInput,
    store: StoreDep,
    user: ApiUser,
    response: Response,
) -> PromptNoteOut:
    note = await events.add_note(store, user, event_id, body.note or "")
    response.headers["Cache-Control"] = PRIVATE
    return _note(note)


@router.get(
    "/worker_suspicion_events",
    response_model=WorkerSuspicionEventsOut,
    summary="Suspicious things workers did (moderators)",
)
async def worker_suspicion_events(
    store: StoreDep,
    user: ApiUser,
    response: Response,
    limit: Annotated[int, Query()] = 100,
    before_id: Annotated[int | None, Query(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)] = None,
    worker_id: Annotated[str | None, Query(max_length=36)] = None,
    user_id: Annotated[int | None, Query(ge=-DATABASE_INT_MAX, le=DATABASE_INT_MAX)] = None,
) -> WorkerSuspicionEventsOut:
    found = await events.worker_suspicions(store, user, limit, before_id, worker_id, user_id)
    response.headers["Cache-Control"] = PRIVATE
    return WorkerSuspicionEventsOut(
        events=[
            WorkerSuspicionEventOut(
                id=e.id,
                created=wire_time(e.created_at),
                worker_id=e.worker_id,
                worker_name=e.worker_name,
                user_id=e.user_id,
                suspicion_id=e.suspicion_id,
                reason=e.reason,
                detail=e.detail,
            )
            for e in found
        ],
        next_cursor=events.next_cursor([e.id for e in found], limit),
    )
