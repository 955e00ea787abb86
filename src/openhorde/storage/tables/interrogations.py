"""Alchemy: interrogation requests (``interrogations``) and their forms (``interrogation_forms``).

An interrogation is one source image and the forms asked of it (a caption, tags, an NSFW verdict, a
post-processed copy). Each form is handed out on its own to an alchemist worker, with a lease (``deadline_at``).
The columns the hand-out filters and orders by (the requester, the image's tiles, slow or trusted workers, the
priority and age) are copied onto each form, so a pop reads one table along one index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base, partial_index


class Interrogation(Base):
    """One client's request to interrogate an image."""

    __tablename__ = "interrogations"
    __table_args__ = (Index("ix_interrogations_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    """Removed (with its forms and images) after this; pushed back by every pop and submit of its forms."""
    source_key: Mapped[str] = mapped_column(String(200))
    image_tiles: Mapped[int] = mapped_column(Integer)
    slow_workers: Mapped[bool] = mapped_column(Boolean, default=True)
    trusted_workers: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook: Mapped[str | None] = mapped_column(String(1024), default=None)
    client_agent: Mapped[str] = mapped_column(String(1000), default="unknown:0:unknown")


class InterrogationForm(Base):
    """One form of an interrogation: waiting, leased to a worker (processing), or ended."""

    __tablename__ = "interrogation_forms"
    __table_args__ = (
        # The pop walks this index from the top: it matches its WHERE and ORDER BY.
        partial_index(
            "ix_interrogation_forms_queue",
            text("priority DESC"),
            "created_at",
            "id",
            where="state = 'waiting'",
        ),
        # The lease sweep reads the forms in progress by deadline.
        partial_index("ix_interrogation_forms_deadline", "deadline_at", where="state = 'processing'"),
        # A user's forms still to do: the concurrency limit counts them.
        partial_index("ix_interrogation_forms_user_open", "user_id", where="state IN ('waiting', 'processing')"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    interrogation_id: Mapped[str] = mapped_column(ForeignKey("interrogations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    """The form's place in the client's list, which the status keeps."""
    user_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reward_cents: Mapped[int] = mapped_column(BigInteger)
    """What the worker earns for it; the requester pays this plus the horde's cut (``charge_cents``)."""
    charge_cents: Mapped[int] = mapped_column(BigInteger)
    image_tiles: Mapped[int] = mapped_column(Integer)
    slow_workers: Mapped[bool] = mapped_column(Boolean)
    trusted_workers: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    worker_id: Mapped[str | None] = mapped_column(String(36), default=None)
    """The worker holding or having delivered it. No foreign key: a deleted worker's forms keep their history."""
    started_at: Mapped[float | None] = mapped_column(Float, default=None)
    deadline_at: Mapped[float | None] = mapped_column(Float, default=None)
    aborts: Mapped[int] = mapped_column(Integer, default=0)
