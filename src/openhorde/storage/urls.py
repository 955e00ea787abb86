"""Database URLs as the drivers take them."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """A ``postgresql+asyncpg://`` URL as asyncpg's own DSN, for the connections made without SQLAlchemy (the
    event broker's listener, the read pool)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
