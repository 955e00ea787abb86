"""``/teams``: teams of workers."""

from __future__ import annotations

import time

from fastapi import APIRouter

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.schemas.teams import (
    ActiveModelLite,
    CreateTeamInput,
    DeletedTeam,
    ModifyTeam,
    ModifyTeamInput,
    TeamDetails,
    WorkerDetailsLite,
)
from openhorde.domain import teams
from openhorde.domain.teams import TeamView

router = APIRouter(prefix="/teams", tags=["teams"])


def _details(view: TeamView, with_members: bool) -> TeamDetails:
    t = view.totals
    return TeamDetails(
        name=view.team.name,
        id=view.team.id,
        info=view.team.info,
        requests_fulfilled=t.fulfilments,
        kudos=t.kudos_cents / 100,
        uptime=int(t.uptime_seconds),
        creator=view.creator,
        worker_count=t.worker_count,
        workers=[WorkerDetailsLite(name=m.name, id=m.id, online=m.online) for m in view.workers]
        if with_members
        else None,
        models=[ActiveModelLite(name=name, count=count) for name, count in view.models] if with_members else None,
        contributions=round(t.megapixelsteps, 2),
    )


@router.get("", response_model=list[TeamDetails], response_model_exclude_none=True, summary="All teams")
async def list_teams(store: StoreDep, ctx: ContextDep) -> list[TeamDetails]:
    rows = await teams.list_teams(store)
    views = await teams.views(store, rows, ctx.settings.queue.worker_stale_seconds, time.time(), with_members=False)
    return [_details(v, with_members=False) for v in views]


@router.post("", response_model=ModifyTeam, summary="Create a team (trusted users)")
async def create_team(body: CreateTeamInput, store: StoreDep, user: ApiUser) -> ModifyTeam:
    team = await teams.create_team(store, user, body.name, body.info)
    return ModifyTeam(id=team.id, name=team.name, info=team.info)


@router.get("/{team_id}", response_model=TeamDetails, response_model_exclude_none=True, summary="A team")
async def get_team(team_id: str, store: StoreDep, ctx: ContextDep) -> TeamDetails:
    team = await teams.get_team(store, team_id)
    [view] = await teams.views(store, [team], ctx.settings.queue.worker_stale_seconds, time.time())
    return _details(view, with_members=True)


@router.patch(
    "/{team_id}", response_model=ModifyTeam, response_model_exclude_none=True, summary="Change a team (creator, mods)"
)
async def modify_team(team_id: str, body: ModifyTeamInput, store: StoreDep, user: ApiUser) -> ModifyTeam:
    team = await teams.get_team(store, team_id)
    changed = await teams.update_team(store, team, user, body.name, body.info)
    return ModifyTeam.model_validate({"id": team.id, **changed})


@router.delete("/{team_id}", response_model=DeletedTeam, summary="Delete a team (creator or moderator)")
async def delete_team(team_id: str, store: StoreDep, user: ApiUser) -> DeletedTeam:
    team = await teams.get_team(store, team_id)
    answer = DeletedTeam(deleted_id=team.id, deleted_name=team.name)
    await teams.delete_team(store, team, user)
    return answer
