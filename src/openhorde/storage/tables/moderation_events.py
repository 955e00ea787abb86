"""Moderation evidence: prompt events (filter refusals and rewrites), their notes, and worker suspicion events.

Account, request and worker ids carry no foreign keys on purpose: evidence outlives the short-lived request,
and a worker's or an account's deletion must not erase what moderators looked at. Only a note references its
event, and goes with it.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class PromptModerationEvent(Base):
    """One prompt our filters refused or rewrote; the address only as the keyed hash ``client_ip_hash`` gives."""

    __tablename__ = "prompt_moderation_events"
    __table_args__ = (Index("ix_prompt_moderation_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Float)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    request_id: Mapped[str | None] = mapped_column(String(36), default=None)
    ip_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    submitted_prompt: Mapped[str] = mapped_column(Text)
    effective_prompt: Mapped[str | None] = mapped_column(Text, default=None)


class PromptModerationNote(Base):
    """A moderator's note on a prompt event; notes are only added, never edited."""

    __tablename__ = "prompt_moderation_notes"
    __table_args__ = (Index("ix_prompt_moderation_notes_event_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("prompt_moderation_events.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class WorkerSuspicionEvent(Base):
    """One suspicious thing a worker did, with the reference's suspicion id and name."""

    __tablename__ = "worker_suspicion_events"
    __table_args__ = (Index("ix_worker_suspicion_events_worker_id_id", "worker_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Float)
    worker_id: Mapped[str] = mapped_column(String(36))
    worker_name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    suspicion_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
