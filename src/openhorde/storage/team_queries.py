"""Named queries of teams: their workers' sums, their models, and membership changes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Team, Worker, WorkerModel


@dataclass(frozen=True)
class TeamTotals:
    """Sums over a team's current workers."""

    worker_count: int = 0
    fulfilments: int = 0
    kudos_cents: int = 0
    uptime_seconds: float = 0.0
    megapixelsteps: float = 0.0


_CLEAR_TEAM = update(Worker).where(Worker.team_id == bindparam("team")).values(team_id=None)


async def totals(session: AsyncSession, team_ids: Collection[str]) -> dict[str, TeamTotals]:
    """Worker count, images, kudos, uptime and megapixelsteps of each team, in one grouped query."""
    if not team_ids:
        return {}
    rows = await session.execute(
        select(
            Worker.team_id,
            func.count(),
            func.coalesce(func.sum(Worker.fulfilments), 0),
            func.coalesce(func.sum(Worker.kudos_generated_cents + Worker.kudos_uptime_cents), 0),
            func.coalesce(func.sum(Worker.uptime_seconds), 0.0),
            func.coalesce(func.sum(Worker.megapixelsteps), 0.0),
        )
        .where(Worker.team_id.in_(list(team_ids)))
        .group_by(Worker.team_id)
    )
    return {
        str(team_id): TeamTotals(int(count), int(done), int(kudos), float(uptime), float(mps))
        for team_id, count, done, kudos, uptime, mps in rows
    }


async def workers_of(session: AsyncSession, team_id: str) -> list[Worker]:
    """The workers of a team, by name."""
    return list(await session.scalars(select(Worker).where(Worker.team_id == team_id).order_by(Worker.name)))


async def online_model_counts(session: AsyncSession, team_id: str, online_since: float) -> list[tuple[str, int]]:
    """Each model the team's online workers serve, with how many of them serve it."""
    rows = await session.execute(
        select(WorkerModel.model, func.count())
        .join(Worker, Worker.id == WorkerModel.worker_id)
        .where(Worker.team_id == team_id, Worker.last_check_in_at > online_since)
        .group_by(WorkerModel.model)
        .order_by(WorkerModel.model)
    )
    return [(str(model), int(count)) for model, count in rows]


async def names(session: AsyncSession, team_ids: Collection[str]) -> dict[str, str]:
    """The names of these teams, by id."""
    if not team_ids:
        return {}
    rows = await session.execute(select(Team.id, Team.name).where(Team.id.in_(list(team_ids))))
    return {str(team_id): str(name) for team_id, name in rows}


async def team_by_name_any_case(session: AsyncSession, name: str) -> Team | None:
    """The team whose name equals ``name`` regardless of case (at most one: ``ix_teams_name_lower`` is unique)."""
    return await session.scalar(select(Team).where(func.lower(Team.name) == func.lower(name)))


async def insert_unless_name_taken(session: AsyncSession, team: Team) -> bool:
    """Insert ``team`` in a savepoint; ``False`` (and nothing inserted) if its name is already taken, in any case."""
    try:
        async with session.begin_nested():
            session.add(team)
    except IntegrityError:
        return False
    return True


async def rename_unless_name_taken(session: AsyncSession, team: Team, name: str) -> bool:
    """Rename ``team`` in a savepoint; ``False`` (and the savepoint undone) if the name is taken, in any case."""
    try:
        async with session.begin_nested():
            team.name = name
    except IntegrityError:
        return False
    return True


async def clear_team(session: AsyncSession, team_id: str) -> None:
    """Take every worker out of a team (there is no foreign key to do it on delete)."""
    await session.execute(_CLEAR_TEAM, {"team": team_id})
