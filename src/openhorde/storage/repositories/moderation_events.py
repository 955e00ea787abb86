"""The moderation evidence repository: prompt events with their notes, and worker suspicion events.

Pages are newest first and keyed by id (``before_id`` is exclusive), so a page is one index range read
however long the history grows; a page's notes are one more statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, cast

from sqlalchemy import Select, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import (
    PromptModerationEvent,
    PromptModerationNote,
    User,
    Worker,
    WorkerModel,
    WorkerSuspicionEvent,
)

_EVENTS = cast(Table, PromptModerationEvent.__table__)
_NOTES = cast(Table, PromptModerationNote.__table__)
_SUSPICIONS = cast(Table, WorkerSuspicionEvent.__table__)
_WORKERS = cast(Table, Worker.__table__)
_WORKER_MODELS = cast(Table, WorkerModel.__table__)
_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class PromptNote:
    """A moderator's note on a prompt event."""

    id: int
    event_id: int
    author_id: int | None
    note: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PromptEvent:
    """A prompt the filters refused or rewrote, with its notes (oldest first)."""

    id: int
    created_at: float
    user_id: int | None
    request_id: str | None
    ip_hash: str | None
    models: list[str]
    reason: str
    outcome: str
    submitted_prompt: str
    effective_prompt: str | None
    notes: list[PromptNote] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WorkerSuspicion:
    """One suspicious thing a worker did."""

    id: int
    created_at: float
    worker_id: str
    worker_name: str
    user_id: int | None
    suspicion_id: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class PausedWorker:
    """A paused worker with what the moderation overview shows of its owner."""

    id: str
    worker_type: str
    name: str
    user_id: int
    owner_name: str
    owner_trusted: bool
    owner_flagged: bool
    contact: str | None
    last_check_in_at: float
    maintenance: bool
    maintenance_msg: str | None
    fulfilments: int
    aborted_jobs: int
    bridge_agent: str
    models: list[str] = field(default_factory=list)


_EVENT_FIELDS = tuple(f.name for f in fields(PromptEvent) if f.name != "notes")
_NOTE_FIELDS = tuple(f.name for f in fields(PromptNote))
_SUSPICION_FIELDS = tuple(f.name for f in fields(WorkerSuspicion))
_PAUSED = (
    select(
        _WORKERS.c.id,
        _WORKERS.c.worker_type,
        _WORKERS.c.name,
        _WORKERS.c.user_id,
        _USERS.c.username.label("owner_name"),
        _USERS.c.is_trusted.label("owner_trusted"),
        _USERS.c.is_flagged.label("owner_flagged"),
        _USERS.c.contact,
        _WORKERS.c.last_check_in_at,
        _WORKERS.c.maintenance,
        _WORKERS.c.maintenance_msg,
        _WORKERS.c.fulfilments,
        _WORKERS.c.aborted_jobs,
        _WORKERS.c.bridge_agent,
    )
    .join(_USERS, _USERS.c.id == _WORKERS.c.user_id)
    .where(_WORKERS.c.paused.is_(True))
)


def _page(query: Select[Any], table: Table, limit: int, before_id: int | None) -> Select[Any]:
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    return query.order_by(table.c.id.desc()).limit(limit)


class ModerationEventRepository:
    """Every statement about ``prompt_moderation_events``, ``prompt_moderation_notes`` and
    ``worker_suspicion_events``, and the paused workers the overview lists."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_prompt_event(self, values: dict[str, Any]) -> int:
        """Record a prompt event (every field but ``id`` and ``notes``); its new id."""
        query = insert(_EVENTS).returning(_EVENTS.c.id)
        return int((await self._session.execute(query, values)).scalar_one())

    async def prompt_events(
        self,
        limit: int,
        before_id: int | None = None,
        event_id: int | None = None,
        user_id: int | None = None,
        reasons: list[str] | None = None,
        ip_hash: str | None = None,
    ) -> list[PromptEvent]:
        """A page of prompt events, newest first, each with its notes."""
        query = select(*(_EVENTS.c[name] for name in _EVENT_FIELDS))
        if event_id is not None:
            query = query.where(_EVENTS.c.id == event_id)
        if user_id is not None:
            query = query.where(_EVENTS.c.user_id == user_id)
        if reasons:
            query = query.where(_EVENTS.c.reason.in_(reasons))
        if ip_hash is not None:
            query = query.where(_EVENTS.c.ip_hash == ip_hash)
        rows = [dict(row._mapping) for row in await self._session.execute(_page(query, _EVENTS, limit, before_id))]
        if not rows:
            return []
        notes: dict[int, list[PromptNote]] = {}
        note_query = (
            select(*(_NOTES.c[name] for name in _NOTE_FIELDS))
            .where(_NOTES.c.event_id.in_([row["id"] for row in rows]))
            .order_by(_NOTES.c.id)
        )
        for note in await self._session.execute(note_query):
            notes.setdefault(note.event_id, []).append(PromptNote(**note._mapping))
        return [
            PromptEvent(**{**row, "models": list(row["models"] or [])}, notes=notes.get(row["id"], [])) for row in rows
        ]

    async def add_note(self, event_id: int, author_id: int, note: str, now: float) -> PromptNote | None:
        """Add a note to an event; ``None`` when there is no such event."""
        exists = await self._session.execute(select(_EVENTS.c.id).where(_EVENTS.c.id == event_id))
        if exists.scalar_one_or_none() is None:
            return None
        values = {"event_id": event_id, "author_id": author_id, "note": note, "created_at": now}
        query = insert(_NOTES).returning(*(_NOTES.c[name] for name in _NOTE_FIELDS))
        return PromptNote(**(await self._session.execute(query, values)).one()._mapping)

    async def add_worker_suspicion(self, values: dict[str, Any]) -> None:
        """Record a worker suspicion event (every field but ``id``)."""
        await self._session.execute(insert(_SUSPICIONS), values)

    async def worker_suspicions(
        self, limit: int, before_id: int | None = None, worker_id: str | None = None, user_id: int | None = None
    ) -> list[WorkerSuspicion]:
        """A page of worker suspicion events, newest first."""
        query = select(*(_SUSPICIONS.c[name] for name in _SUSPICION_FIELDS))
        if worker_id is not None:
            query = query.where(_SUSPICIONS.c.worker_id == worker_id)
        if user_id is not None:
            query = query.where(_SUSPICIONS.c.user_id == user_id)
        page = _page(query, _SUSPICIONS, limit, before_id)
        return [WorkerSuspicion(**row._mapping) for row in await self._session.execute(page)]

    async def paused_workers(self, limit: int) -> tuple[list[PausedWorker], int]:
        """Up to ``limit`` paused workers (latest check-in first) with their models, and how many are paused."""
        total = await self._session.execute(select(func.count()).where(_WORKERS.c.paused.is_(True)))
        query = _PAUSED.order_by(_WORKERS.c.last_check_in_at.desc(), _WORKERS.c.id).limit(limit)
        rows = [dict(row._mapping) for row in await self._session.execute(query)]
        models: dict[str, list[str]] = {}
        if rows:
            model_query = (
                select(_WORKER_MODELS.c.worker_id, _WORKER_MODELS.c.model)
                .where(_WORKER_MODELS.c.worker_id.in_([row["id"] for row in rows]))
                .order_by(_WORKER_MODELS.c.model)
            )
            for worker_id, model in await self._session.execute(model_query):
                models.setdefault(worker_id, []).append(model)
        workers = [PausedWorker(**row, models=models.get(row["id"], [])) for row in rows]
        return workers, int(total.scalar_one())
