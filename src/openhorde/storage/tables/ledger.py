"""The kudos ledger: transactions and their postings (double entry).

Each transaction's postings sum to zero. A posting moves kudos into or out of either a
user account (``user_id``) or a system account (``system_account``: ``mint`` issues new
kudos, ``burn`` destroys spent ones). ``(kind, reference)`` is unique, so the same business
event (a job's settlement, an idempotent transfer) can be recorded only once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class KudosTransaction(Base):
    """One balanced movement of kudos, e.g. the settlement of one delivered image."""

    __tablename__ = "kudos_transactions"
    __table_args__ = (UniqueConstraint("kind", "reference", name="uq_kudos_transactions_kind_reference"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    memo: Mapped[str] = mapped_column(String(500), default="")


class KudosPosting(Base):
    """One leg of a transaction: a signed amount in hundredths of a kudo on one account."""

    __tablename__ = "kudos_postings"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NULL) <> (system_account IS NULL)",
            name="one_account",
        ),
        Index("ix_kudos_postings_user_id", "user_id"),
        Index("ix_kudos_postings_transaction_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("kudos_transactions.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), default=None)
    system_account: Mapped[str | None] = mapped_column(String(16), default=None)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
