"""Moderation state: regex prompt filters, the horde modes singleton and messages to workers."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base

HORDE_MODES_ROW_ID = 1


class PromptFilter(Base):
    """A moderator's regex; ``filter_type`` 10-19 is group 1, 20-29 group 2 (see ``domain.prompt_filters``)."""

    __tablename__ = "prompt_filters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    regex: Mapped[str] = mapped_column(Text)
    filter_type: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    replacement: Mapped[str] = mapped_column(String(1000), default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    updated_at: Mapped[float] = mapped_column(Float)


class HordeModes(Base):
    """One row (id 1): the horde's modes and the version of the filter list, read through a short cache."""

    __tablename__ = "horde_modes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    invite_only: Mapped[bool] = mapped_column(Boolean, default=False)
    raid: Mapped[bool] = mapped_column(Boolean, default=False)
    filters_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class WorkerMessage(Base):
    """A message shown to one worker on every pop until ``expires_at``."""

    __tablename__ = "worker_messages"
    __table_args__ = (Index("ix_worker_messages_worker_id_expires_at", "worker_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    message: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
