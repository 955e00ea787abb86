"""Teams: named groups of workers. Trusted users create them; any worker owner may join one.

A team's figures (images, kudos, uptime, megapixelsteps) are the sums over its *current* workers'
lifetime counters, computed when asked; the AI Horde instead keeps counters on the team that grow only
while a worker is in it. Ours need no extra write per delivered image, and a worker that leaves takes
its figures with it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import audit
from openhorde.domain.accounts import is_anonymous
from openhorde.domain.names import clean_name
from openhorde.errors import AnonForbidden, NameAlreadyExists, NotOwner, NotTrusted, NoValidActions, TeamNotFound
from openhorde.storage import team_queries
from openhorde.storage.tables import Team, User, Worker
from openhorde.storage.team_queries import TeamTotals

TEAM_NAME_MIN_LENGTH = 3
TEAM_NAME_MAX_LENGTH = 100


@dataclass(frozen=True)
class TeamMember:
    """A worker as a team's details list it."""

    id: str
    name: str
    online: bool


@dataclass(frozen=True)
class TeamView:
    """A team with its creator, its workers' sums, its workers and their online models."""

    team: Team
    creator: str | None
    totals: TeamTotals
    workers: list[TeamMember] = field(default_factory=list)
    models: list[tuple[str, int]] = field(default_factory=list)


def _is_mod(user: User) -> bool:
    return user.is_moderator or user.is_admin


def _name_taken(existing: str) -> NameAlreadyExists:
    return NameAlreadyExists(
        f"A team named '{existing}' exists already; team names are unique regardless of case.",
        rc="TeamNameAlreadyExists",
    )


async def _check_name_free(session: AsyncSession, raw: str, team: Team | None = None) -> str:
    """The trimmed name, if no other team has it in any case (a team may change the case of its own)."""
    name = clean_name(
        raw, what="team name", minimum=TEAM_NAME_MIN_LENGTH, maximum=TEAM_NAME_MAX_LENGTH, rc="InvalidTeamName"
    )
    existing = await team_queries.team_by_name_any_case(session, name)
    if existing is not None and existing is not team:
        raise _name_taken(existing.name)
    return name


async def create_team(session: AsyncSession, user: User, name: str, info: str | None, now: float | None = None) -> Team:
    """Create a team owned by ``user``, who must be trusted (or a moderator)."""
    if is_anonymous(user):
        raise AnonForbidden("Anonymous users cannot create teams.")
    if not (user.is_trusted or _is_mod(user)):
        raise NotTrusted("Only trusted users can create teams.", rc="UntrustedTeamCreation")
    team = Team(
        id=str(uuid.uuid4()),
        name=await _check_name_free(session, name),
        info=info,
        owner_id=user.id,
        created_at=now or time.time(),
    )
    # The check above cannot see a creation racing in from another request; the unique index on lower(name) can.
    if not await team_queries.insert_unless_name_taken(session, team):
        raise _name_taken(team.name)
    return team


async def get_team(session: AsyncSession, team_id: str) -> Team:
    """The team with this id; ``TeamNotFound`` otherwise."""
    team = await session.get(Team, team_id)
    if team is None:
        raise TeamNotFound(f"Team with ID '{team_id}' not found.")
    return team


async def list_teams(session: AsyncSession) -> list[Team]:
    """Every team, by name."""
    return list(await session.scalars(select(Team).order_by(Team.name)))


async def views(
    session: AsyncSession, teams: list[Team], stale_seconds: int, now: float, with_members: bool = True
) -> list[TeamView]:
    """Details of teams: sums in one grouped query, plus (``with_members``) each team's workers and models."""
    totals = await team_queries.totals(session, [t.id for t in teams])
    owner_ids = {t.owner_id for t in teams if t.owner_id is not None}
    owners = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(owner_ids)))} if owner_ids else {}
    result = []
    for team in teams:
        creator = owners[team.owner_id].display_name if team.owner_id in owners else None
        members: list[TeamMember] = []
        models: list[tuple[str, int]] = []
        if with_members:
            members = [
                TeamMember(w.id, w.name, now - w.last_check_in_at < stale_seconds)
                for w in await team_queries.workers_of(session, team.id)
            ]
            models = await team_queries.online_model_counts(session, team.id, now - stale_seconds)
        result.append(TeamView(team, creator, totals.get(team.id, TeamTotals()), members, models))
    return result


def _check_may_change(team: Team, user: User) -> None:
    if team.owner_id != user.id and not _is_mod(user):
        raise NotOwner("Only the team's creator or a moderator can change or delete it.")


async def update_team(
    session: AsyncSession, team: Team, user: User, name: str | None, info: str | None
) -> dict[str, object]:
    """Rename a team or change its info (its creator or a moderator); return the changed fields."""
    _check_may_change(team, user)
    changed: dict[str, object] = {}
    if name is not None:
        new_name = await _check_name_free(session, name, team)
        if not await team_queries.rename_unless_name_taken(session, team, new_name):
            raise _name_taken(new_name)
        changed["name"] = new_name
    if info is not None:
        team.info = info
        changed["info"] = info
    if not changed:
        raise NoValidActions("No team modification selected!")
    if team.owner_id != user.id:
        await audit.record(session, user, "team.modify", "team", team.id, dict(changed))
    await session.flush()
    return changed


async def delete_team(session: AsyncSession, team: Team, user: User) -> None:
    """Delete a team (its creator or a moderator); its workers stay, without a team."""
    _check_may_change(team, user)
    if team.owner_id != user.id:
        await audit.record(session, user, "team.delete", "team", team.id, {"name": team.name})
    await team_queries.clear_team(session, team.id)
    await session.delete(team)
    await session.flush()


async def assign_worker(session: AsyncSession, worker: Worker, team_id: str) -> str:
    """Put a worker in the team ``team_id``, or in none for ``""``; return the team's name (``""`` for none)."""
    if not team_id.strip():
        worker.team_id = None
        return ""
    team = await get_team(session, team_id.strip())
    worker.team_id = team.id
    return team.name


async def team_names(session: AsyncSession, team_ids: set[str]) -> dict[str, str]:
    """The names of these teams, by id."""
    return await team_queries.names(session, team_ids)
