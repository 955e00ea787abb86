"""The webhook outbox: one row per event to POST to a request's ``webhook`` URL.

A row is written in the transaction that makes its event happen (a submit, a fault), so an
event is never lost and never recorded twice (``event_key`` is unique). Delivery loops claim
due rows (``claimed_until``/``claim_token``), send them, and end the claim in the transaction
that marks them delivered, retried later or failed.
"""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class WebhookDelivery(Base):
    """One event for one webhook URL. Pending while ``next_attempt_at`` is set; it is cleared when the
    row ends ``delivered`` (``delivered_at``) or failed (``failed_at``, with ``last_error``)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_event_key", "event_key", unique=True),
        Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
        Index("ix_webhook_deliveries_request_id", "request_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(1024))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, default=None)
    claimed_until: Mapped[float | None] = mapped_column(Float, default=None)
    claim_token: Mapped[str | None] = mapped_column(String(36), default=None)
    delivered_at: Mapped[float | None] = mapped_column(Float, default=None)
    failed_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
