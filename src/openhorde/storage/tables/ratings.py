"""The ``image_ratings`` table: aesthetic ratings of delivered images (``POST /generate/rate/{id}``)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class ImageRating(Base):
    """A rating of one image (a job), kept after its request is removed: no foreign key to the queue's rows."""

    __tablename__ = "image_ratings"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    model: Mapped[str] = mapped_column(String(255))
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    """Aesthetic rating 1-10; ``None`` for an image only picked as the best of its set."""
    artifacts: Mapped[int | None] = mapped_column(Integer, default=None)
    """0 (flawless) to 5 (garbage), if given."""
    best: Mapped[bool] = mapped_column(Boolean, default=False)
    rated_at: Mapped[float] = mapped_column(Float)
