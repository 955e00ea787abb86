"""The catalogue repository: the model names workers may serve, with their baseline and flags."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

from sqlalchemy import BindParameter, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import CatalogueModel

_MODELS = cast(Table, CatalogueModel.__table__)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One catalogue entry."""

    name: str
    baseline: str
    inpainting: bool
    nsfw: bool
    description: str
    showcases: tuple[str, ...] = ()
    """Showcase image URLs (the model reference's ``showcases``)."""


_ENTRY_COLUMNS = [_MODELS.c[field.name] for field in fields(CatalogueEntry)]
_NAMES = select(_MODELS.c.name)
_EVERY = select(*_ENTRY_COLUMNS).order_by(_MODELS.c.name)
_REMOVE = delete(_MODELS).where(_MODELS.c.name == bindparam("model_name")).returning(_MODELS.c.name)
# Bound as ``new_<field>``: a bind named like a column would join the SET of the upsert.
_NEW_VALUES: dict[str, BindParameter[Any]] = {
    field.name: bindparam(f"new_{field.name}") for field in fields(CatalogueEntry)
}


def _put(dialect: Any) -> Any:
    statement = dialect.insert(_MODELS).values(**_NEW_VALUES)
    changes = {name: statement.excluded[name] for name in _NEW_VALUES if name != "name"}
    return statement.on_conflict_do_update(index_elements=[_MODELS.c.name], set_=changes)


def _add_missing(dialect: Any) -> Any:
    return dialect.insert(_MODELS).values(**_NEW_VALUES).on_conflict_do_nothing(index_elements=[_MODELS.c.name])


_PUT = {True: _put(sqlite), False: _put(postgresql)}
_ADD_MISSING = {True: _add_missing(sqlite), False: _add_missing(postgresql)}


def _values(entry: CatalogueEntry) -> dict[str, Any]:
    values = {f"new_{name}": value for name, value in asdict(entry).items()}
    values["new_showcases"] = list(entry.showcases)  # JSON holds lists
    return values


class CatalogueRepository:
    """Every statement about the ``models`` table."""

    __slots__ = ("_session", "_sqlite")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._sqlite = is_sqlite

    async def names(self) -> frozenset[str]:
        """Every model name in the catalogue."""
        return frozenset((await self._session.execute(_NAMES)).scalars())

    async def every(self) -> list[CatalogueEntry]:
        """Every entry, by name."""
        return [
            CatalogueEntry(**{**row._mapping, "showcases": tuple(row.showcases or ())})
            for row in await self._session.execute(_EVERY)
        ]

    async def put(self, entry: CatalogueEntry) -> None:
        """Add an entry, or replace the one of that name."""
        await self._session.execute(_PUT[self._sqlite], _values(entry))

    async def add_missing(self, entries: Iterable[CatalogueEntry]) -> None:
        """Add the entries whose name the catalogue lacks (those it has are kept as they are)."""
        values = [_values(entry) for entry in entries]
        if values:
            await self._session.execute(_ADD_MISSING[self._sqlite], values)

    async def remove(self, name: str) -> bool:
        """Remove the entry of that name; whether there was one."""
        return (await self._session.execute(_REMOVE, {"model_name": name})).first() is not None
