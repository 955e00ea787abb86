"""The ``shared_keys`` table: keys a user lends out, each with its own kudos budget, expiry and per-job caps."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class SharedKey(Base):
    """A shared key. The key itself is never stored: ``key_hash`` is its keyed hash, as for API keys."""

    __tablename__ = "shared_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """A random row id; the key is derived from it with the server secret (``domain/sharedkeys.py``)."""
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kudos_limit: Mapped[int] = mapped_column(BigInteger)
    """Whole kudos this key may spend in all; -1 = unlimited."""
    utilized_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """Hundredths of a kudo charged through this key so far."""
    expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    max_image_pixels: Mapped[int] = mapped_column(Integer, default=-1)
    max_image_steps: Mapped[int] = mapped_column(Integer, default=-1)
    max_text_tokens: Mapped[int] = mapped_column(Integer, default=-1)
    created_at: Mapped[float] = mapped_column(Float)
