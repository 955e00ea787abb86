"""Declarative base and column conventions shared by every table.

Conventions: times are ``float`` seconds since the epoch (``*_at``), so lease and expiry
arithmetic is plain SQL on both engines; money is ``BigInteger`` hundredths of a kudo
(``*_cents``), so sums are exact on SQLite too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, MetaData, text
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


def partial_index(name: str, *columns: Any, where: str) -> Index:
    """An index over the rows matching ``where`` (SQL text), on PostgreSQL and SQLite alike."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))
