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
from typing import Protocol

from openhorde.domain import audit
from openhorde.domain.accounts import Account, is_anonymous
from openhorde.domain.names import clean_name
from openhorde.errors import (
    AnonForbidden,
    InvalidTeamName,
    NotOwner,
    NoValidActions,
    TeamNameAlreadyExists,
    TeamNotFound,
    UntrustedTeamCreation,
)
from openhorde.storage.repositories.teams import Team as Team  # the domain's names for them too
from openhorde.storage.repositories.teams import TeamTotals as TeamTotals
from openhorde.storage.store import Store

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


class HasWorkerId(Protocol):
    """A worker, or anything else that names one."""

    @property
    def id(self) -> str:
        """The worker's id."""
        ...


def _is_mod(user: Account) -> bool:
    return user.is_moderator or user.is_admin


def _name_taken(existing: str) -> TeamNameAlreadyExists:
    return TeamNameAlreadyExists(f"A team named '{existing}' exists already; team names are unique regardless of case.")


async def _check_name_free(store: Store, raw: str, team: Team | None = None) -> str:
    """The trimmed name, if no other team has it in any case (a team may change the case of its own)."""
    name = clean_name(
        raw, what="team name", minimum=TEAM_NAME_MIN_LENGTH, maximum=TEAM_NAME_MAX_LENGTH, error=InvalidTeamName
    )
    existing = await store.teams.by_name_any_case(name)
    if existing is not None and (team is None or existing.id != team.id):
        raise _name_taken(existing.name)
    return name


async def create_team(store: Store, user: Account, name: str, info: str | None, now: float | None = None) -> Team:
    """Create a team owned by ``user``, who must be trusted (or a moderator)."""
    if is_anonymous(user):
        raise AnonForbidden("Anonymous users cannot create teams.")
    if not (user.is_trusted or _is_mod(user)):
        raise UntrustedTeamCreation("Only trusted users can create teams.")
    team = Team(
        id=str(uuid.uuid4()),
        name=await _check_name_free(store, name),
        info=info,
        owner_id=user.id,
        created_at=now or time.time(),
    )
    # The check above cannot see a creation racing in from another request; the unique index on lower(name) can.
    if not await store.teams.create(team):
        raise _name_taken(team.name)
    return team


async def get_team(store: Store, team_id: str) -> Team:
    """The team with this id; ``TeamNotFound`` otherwise."""
    team = await store.teams.get(team_id)
    if team is None:
        raise TeamNotFound(f"Team with ID '{team_id}' not found.")
    return team


async def list_teams(store: Store) -> list[Team]:
    """Every team, by name."""
    return await store.teams.all()


async def views(
    store: Store, teams: list[Team], stale_seconds: int, now: float, with_members: bool = True
) -> list[TeamView]:
    """Details of teams: sums in one grouped query, plus (``with_members``) each team's workers and models."""
    totals = await store.teams.totals([t.id for t in teams])
    owners = await store.accounts.many(t.owner_id for t in teams if t.owner_id is not None)
    result = []
    for team in teams:
        owner = owners.get(team.owner_id) if team.owner_id is not None else None
        members: list[TeamMember] = []
        models: list[tuple[str, int]] = []
        if with_members:
            members = [
                TeamMember(w.id, w.name, now - w.last_check_in_at < stale_seconds)
                for w in await store.teams.workers_of(team.id)
            ]
            models = await store.teams.online_model_counts(team.id, now - stale_seconds)
        creator = owner.display_name if owner is not None else None
        result.append(TeamView(team, creator, totals.get(team.id, TeamTotals()), members, models))
    return result


def _check_may_change(team: Team, user: Account) -> None:
    if team.owner_id != user.id and not _is_mod(user):
        raise NotOwner("Only the team's creator or a moderator can change or delete it.")


async def update_team(store: Store, team: Team, user: Account, name: str | None, info: str | None) -> dict[str, object]:
    """Rename a team or change its info (its creator or a moderator); return the changed fields."""
    _check_may_change(team, user)
    changed: dict[str, object] = {}
    if name is not None:
        new_name = await _check_name_free(store, name, team)
        if not await store.teams.rename(team.id, new_name):
            raise _name_taken(new_name)
        changed["name"] = new_name
    if info is not None:
        await store.teams.set_info(team.id, info)
        changed["info"] = info
    if not changed:
        raise NoValidActions("No team modification selected!")
    if team.owner_id != user.id:
        await audit.record(store, user, "team.modify", "team", team.id, dict(changed))
    return changed


async def delete_team(store: Store, team: Team, user: Account) -> None:
    """Delete a team (its creator or a moderator); its workers stay, without a team."""
    _check_may_change(team, user)
    if team.owner_id != user.id:
        await audit.record(store, user, "team.delete", "team", team.id, {"name": team.name})
    await store.teams.delete(team.id)


async def assign_worker(store: Store, worker: HasWorkerId, team_id: str) -> str:
    """Put a worker in the team ``team_id``, or in none for ``""``; return the team's name (``""`` for none)."""
    if not team_id.strip():
        await store.teams.move_worker(worker.id, None)
        return ""
    team = await get_team(store, team_id.strip())
    await store.teams.move_worker(worker.id, team.id)
    return team.name


async def team_names(store: Store, team_ids: set[str]) -> dict[str, str]:
    """The names of these teams, by id."""
    return await store.teams.names(team_ids)
