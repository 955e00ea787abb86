"""Declarative base and column conventions shared by every table.

Conventions: times are ``float`` seconds since the epoch (``*_at``), so lease and expiry
arithmetic is plain SQL on both engines; money is ``BigInteger`` hundredths of a kudo
(``*_cents``), so sums are exact on SQLite too.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table class."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
