"""The ``users`` table: accounts, their roles and their kudos balance projection."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class User(Base):
    """An account. ``kudos_cents`` is a projection of the ledger, updated in the same transaction."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_active_at: Mapped[float] = mapped_column(Float)
    kudos_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    concurrency: Mapped[int] = mapped_column(Integer, default=30)
    worker_invited: Mapped[int] = mapped_column(Integer, default=0)
    public_workers: Mapped[bool] = mapped_column(Boolean, default=False)
    contact: Mapped[str | None] = mapped_column(String(500), default=None)
    admin_comment: Mapped[str | None] = mapped_column(Text, default=None)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_moderator: Mapped[bool] = mapped_column(Boolean, default=False)
    is_trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    is_customizer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_vpn: Mapped[bool] = mapped_column(Boolean, default=False)
    is_service: Mapped[bool] = mapped_column(Boolean, default=False)
    is_education: Mapped[bool] = mapped_column(Boolean, default=False)
    is_special: Mapped[bool] = mapped_column(Boolean, default=False)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    usage_megapixelsteps: Mapped[float] = mapped_column(Float, default=0.0)
    usage_requests: Mapped[int] = mapped_column(Integer, default=0)
    contribution_megapixelsteps: Mapped[float] = mapped_column(Float, default=0.0)
    contribution_fulfillments: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def display_name(self) -> str:
        """The public ``name#id`` form."""
        return f"{self.username}#{self.id}"
