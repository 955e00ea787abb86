"""Image counters per model and time bucket, for ``/stats/img/*``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class ImageStat(Base):
    """Images delivered and their pixel-steps for one model in one time bucket.

    ``span_seconds`` is the bucket's length (0 for the all-time row, whose ``bucket_start`` is 0); each length
    serves one window of ``/stats/img/*`` (``domain/stats.py``), and rows older than their window are pruned.
    The rows are counters, added to as images are delivered: the figures never scan the history of jobs.
    """

    __tablename__ = "image_stats"

    span_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger, default=0)
    pixelsteps: Mapped[int] = mapped_column(BigInteger, default=0)
