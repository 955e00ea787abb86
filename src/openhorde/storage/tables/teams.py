"""The ``teams`` table: named groups of workers (``workers.team_id``)."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class Team(Base):
    """A team of workers; its figures are the sums over its current workers."""

    __tablename__ = "teams"
    # Names are unique regardless of case ("Crew" and "crew" cannot both exist); migration 0012.
    __table_args__ = (Index("ix_teams_name_lower", text("lower(name)"), unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    info: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[float] = mapped_column(Float)
