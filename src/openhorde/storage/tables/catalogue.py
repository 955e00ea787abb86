"""The ``models`` table: the catalogue of model names workers may serve."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class CatalogueModel(Base):
    """A model name known to the horde, with its baseline and flags."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    baseline: Mapped[str] = mapped_column(String(64))
    inpainting: Mapped[bool] = mapped_column(Boolean, default=False)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    showcases: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    """Showcase image URLs (from the AI Horde model reference)."""
