"""``kudos_escrow``: kudos held back from an untrusted worker owner until the account is trusted.

The kudos themselves sit on the ledger's ``escrow`` system account; this table says whose they
are (``held_cents`` per user, summing to that account's balance), and counts what the owner
earned while untrusted, which decides automatic trust.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class KudosEscrow(Base):
    """One untrusted (or formerly untrusted) worker owner's escrow."""

    __tablename__ = "kudos_escrow"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True)
    held_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """Kudos (hundredths) now held; released to the balance when the user becomes trusted."""
    earned_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    """Every reward earned while untrusted, held or not."""
    images: Mapped[int] = mapped_column(Integer, default=0)
    """Images delivered while untrusted."""
    releases: Mapped[int] = mapped_column(Integer, default=0)
    """How many releases happened: the next release's ledger reference, so each is recorded once."""
