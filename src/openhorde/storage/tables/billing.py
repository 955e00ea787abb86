"""Tables of the paid tiers: who is a supporter until when, and which Stripe events were handled."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class Supporter(Base):
    """A user's Supporter tier: active while ``until`` is in the future; the Stripe customer it is paid by."""

    __tablename__ = "supporters"
    __table_args__ = (Index("ix_supporters_stripe_customer_id", "stripe_customer_id", unique=True),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    until: Mapped[float] = mapped_column(Float, default=0.0)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), default=None)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), default=None)
    updated_at: Mapped[float] = mapped_column(Float)


class StripeEvent(Base):
    """A Stripe webhook event already handled (by its id), so a redelivery changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    received_at: Mapped[float] = mapped_column(Float)
