"""The ``news`` table: pieces of news the admins publish on ``/status/news``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class NewsPiece(Base):
    """One piece of news, with the AI Horde's fields (``tags`` and ``more_info_urls`` are lists of strings)."""

    __tablename__ = "news"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    date_published: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    newspiece: Mapped[str] = mapped_column(Text)
    importance: Mapped[str] = mapped_column(String(32))
    tags: Mapped[list[Any]] = mapped_column(JSON)
    more_info_urls: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
