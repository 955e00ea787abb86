"""The news repository: the pieces of news on ``/status/news``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import NewsPiece as NewsRow

_NEWS = cast(Table, NewsRow.__table__)


@dataclass(frozen=True, slots=True)
class NewsPiece:
    """A piece of news as published."""

    id: int
    date_published: str
    title: str
    newspiece: str
    importance: str
    tags: list[str]
    more_info_urls: list[str]
    created_at: float


_FIELDS = tuple(f.name for f in fields(NewsPiece))
_COLUMNS = [_NEWS.c[name] for name in _FIELDS]
_NEWEST_FIRST = select(*_COLUMNS).order_by(_NEWS.c.date_published.desc(), _NEWS.c.id.desc())
_INSERT = insert(_NEWS).returning(*_COLUMNS)
_DELETE = delete(_NEWS).where(_NEWS.c.id == bindparam("piece")).returning(*_COLUMNS)


def _piece(mapping: Any) -> NewsPiece:
    values = dict(mapping)
    values["tags"] = list(values["tags"] or [])
    values["more_info_urls"] = list(values["more_info_urls"] or [])
    return NewsPiece(**values)


class NewsRepository:
    """Every statement about ``news``."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def newest_first(self) -> list[NewsPiece]:
        """Every piece, the most recently dated first."""
        return [_piece(row._mapping) for row in await self._session.execute(_NEWEST_FIRST)]

    async def add(self, values: dict[str, Any]) -> NewsPiece:
        """Publish a piece (every field but ``id``); the piece with its new id."""
        row = (await self._session.execute(_INSERT, values)).one()
        return _piece(row._mapping)

    async def remove(self, piece_id: int) -> NewsPiece | None:
        """Delete a piece; what it was, or ``None`` if there was none with that id."""
        row = (await self._session.execute(_DELETE, {"piece": piece_id})).first()
        return None if row is None else _piece(row._mapping)
