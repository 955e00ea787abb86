"""The gallery: finished images a registered user asked to keep beyond a request's retention time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class GalleryImage(Base):
    """One kept image with the settings that made it (copied: the request row is removed later)."""

    __tablename__ = "gallery_images"
    __table_args__ = (Index("ix_gallery_images_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(36))
    job_id: Mapped[str] = mapped_column(String(36), unique=True)
    image_key: Mapped[str] = mapped_column(String(200), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    worker_id: Mapped[str | None] = mapped_column(String(36), default=None)
    worker_name: Mapped[str] = mapped_column(String(100))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source_processing: Mapped[str] = mapped_column(String(16))
    censored: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
