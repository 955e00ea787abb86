"""The teams repository: teams, their workers' sums and models, and which team a worker is in.

Team names are unique regardless of case (the unique index on ``lower(name)``): a creation that loses a race
for a name inserts nothing (``create`` returns ``False``), and a rename that does is undone in a savepoint.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Team as TeamRow
from openhorde.storage.tables import Worker, WorkerModel

_TEAMS = cast(Table, TeamRow.__table__)
_WORKERS = cast(Table, Worker.__table__)
_WORKER_MODELS = cast(Table, WorkerModel.__table__)


@dataclass(frozen=True, slots=True)
class Team:
    """A team of workers."""

    id: str
    name: str
    info: str | None
    owner_id: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class TeamTotals:
    """Sums over a team's current workers."""

    worker_count: int = 0
    fulfilments: int = 0
    kudos_cents: int = 0
    uptime_seconds: float = 0.0
    megapixelsteps: float = 0.0


@dataclass(frozen=True, slots=True)
class TeamWorker:
    """A worker of a team, as the team's details list it."""

    id: str
    name: str
    last_check_in_at: float


_TEAM_FIELDS = tuple(field.name for field in fields(Team))
_TEAM_COLUMNS = [_TEAMS.c[name] for name in _TEAM_FIELDS]

_GET = select(*_TEAM_COLUMNS).where(_TEAMS.c.id == bindparam("team"))
_ALL = select(*_TEAM_COLUMNS).order_by(_TEAMS.c.name)
_BY_NAME_ANY_CASE = select(*_TEAM_COLUMNS).where(func.lower(_TEAMS.c.name) == func.lower(bindparam("wanted")))


def _insert(insert: Any) -> Any:
    """Insert a team unless its name (in any case) is taken: then nothing, and no row comes back."""
    values = {name: bindparam(f"v_{name}", type_=_TEAMS.c[name].type) for name in _TEAM_FIELDS}
    return insert(_TEAMS).values(values).on_conflict_do_nothing().returning(_TEAMS.c.id)


_INSERT = {True: _insert(sqlite.insert), False: _insert(postgresql.insert)}
_RENAME = update(_TEAMS).where(_TEAMS.c.id == bindparam("team")).values(name=bindparam("new_name"))
_SET_INFO = update(_TEAMS).where(_TEAMS.c.id == bindparam("team")).values(info=bindparam("new_info"))
_CLEAR_TEAM = update(_WORKERS).where(_WORKERS.c.team_id == bindparam("team")).values(team_id=None)
_DELETE = delete(_TEAMS).where(_TEAMS.c.id == bindparam("team"))
_MOVE_WORKER = update(_WORKERS).where(_WORKERS.c.id == bindparam("worker")).values(team_id=bindparam("new_team"))

_TOTALS = (
    select(
        _WORKERS.c.team_id,
        func.count(),
        func.coalesce(func.sum(_WORKERS.c.fulfilments), 0),
        func.coalesce(func.sum(_WORKERS.c.kudos_generated_cents + _WORKERS.c.kudos_uptime_cents), 0),
        func.coalesce(func.sum(_WORKERS.c.uptime_seconds), 0.0),
        func.coalesce(func.sum(_WORKERS.c.megapixelsteps), 0.0),
    )
    .where(_WORKERS.c.team_id.in_(bindparam("teams", expanding=True)))
    .group_by(_WORKERS.c.team_id)
)
_WORKERS_OF = (
    select(_WORKERS.c.id, _WORKERS.c.name, _WORKERS.c.last_check_in_at)
    .where(_WORKERS.c.team_id == bindparam("team"))
    .order_by(_WORKERS.c.name)
)
_ONLINE_MODEL_COUNTS = (
    select(_WORKER_MODELS.c.model, func.count())
    .join_from(_WORKER_MODELS, _WORKERS, _WORKERS.c.id == _WORKER_MODELS.c.worker_id)
    .where(_WORKERS.c.team_id == bindparam("team"), _WORKERS.c.last_check_in_at > bindparam("online_since"))
    .group_by(_WORKER_MODELS.c.model)
    .order_by(_WORKER_MODELS.c.model)
)
_NAMES = select(_TEAMS.c.id, _TEAMS.c.name).where(_TEAMS.c.id.in_(bindparam("teams", expanding=True)))


def _team(row: Row[Any] | None) -> Team | None:
    return None if row is None else Team(**row._mapping)


class TeamRepository:
    """Every statement about ``teams``, and about ``workers.team_id``."""

    __slots__ = ("_session", "_sqlite")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._sqlite = is_sqlite

    async def get(self, team_id: str) -> Team | None:
        """The team with this id."""
        return _team((await self._session.execute(_GET, {"team": team_id})).first())

    async def all(self) -> list[Team]:
        """Every team, by name."""
        return [Team(**row._mapping) for row in await self._session.execute(_ALL)]

    async def by_name_any_case(self, name: str) -> Team | None:
        """The team whose name equals ``name`` regardless of case (at most one: ``ix_teams_name_lower`` is unique)."""
        return _team((await self._session.execute(_BY_NAME_ANY_CASE, {"wanted": name})).first())

    async def create(self, team: Team) -> bool:
        """Insert ``team``; ``False`` (and nothing inserted) if its name is already taken, in any case."""
        values = {f"v_{name}": getattr(team, name) for name in _TEAM_FIELDS}
        return (await self._session.execute(_INSERT[self._sqlite], values)).first() is not None

    async def rename(self, team_id: str, name: str) -> bool:
        """Rename a team in a savepoint; ``False`` (and the savepoint undone) if the name is taken, in any case."""
        try:
            async with self._session.begin_nested():
                await self._session.execute(_RENAME, {"team": team_id, "new_name": name})
        except IntegrityError:
            return False
        return True

    async def set_info(self, team_id: str, info: str) -> None:
        """Change a team's description."""
        await self._session.execute(_SET_INFO, {"team": team_id, "new_info": info})

    async def delete(self, team_id: str) -> None:
        """Delete a team; its workers stay, in no team (there is no foreign key to do it on delete)."""
        await self._session.execute(_CLEAR_TEAM, {"team": team_id})
        await self._session.execute(_DELETE, {"team": team_id})

    async def move_worker(self, worker_id: str, team_id: str | None) -> None:
        """Put a worker in a team, or in none (``None``)."""
        await self._session.execute(_MOVE_WORKER, {"worker": worker_id, "new_team": team_id})

    async def totals(self, team_ids: Collection[str]) -> dict[str, TeamTotals]:
        """Worker count, images, kudos, uptime and megapixelsteps of each team, in one grouped query."""
        if not team_ids:
            return {}
        rows = await self._session.execute(_TOTALS, {"teams": list(team_ids)})
        return {
            str(team_id): TeamTotals(int(count), int(done), int(kudos), float(uptime), float(mps))
            for team_id, count, done, kudos, uptime, mps in rows
        }

    async def workers_of(self, team_id: str) -> list[TeamWorker]:
        """The workers of a team, by name."""
        rows = await self._session.execute(_WORKERS_OF, {"team": team_id})
        return [TeamWorker(str(worker_id), str(name), float(at)) for worker_id, name, at in rows]

    async def online_model_counts(self, team_id: str, online_since: float) -> list[tuple[str, int]]:
        """Each model the team's online workers serve, with how many of them serve it."""
        rows = await self._session.execute(_ONLINE_MODEL_COUNTS, {"team": team_id, "online_since": online_since})
        return [(str(model), int(count)) for model, count in rows]

    async def names(self, team_ids: Collection[str]) -> dict[str, str]:
        """The names of these teams, by id."""
        if not team_ids:
            return {}
        rows = await self._session.execute(_NAMES, {"teams": list(team_ids)})
        return {str(team_id): str(name) for team_id, name in rows}
