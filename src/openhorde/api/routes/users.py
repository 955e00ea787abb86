"""``/users``, ``/find_user`` and ``/register``: accounts."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.api.deps import ApiCaller, ApiUser, ContextDep, OptionalUser, SessionDep
from openhorde.api.schemas.users import (
    ContributionsDetails,
    ModifyUserInput,
    RegisteredUser,
    RegisterInput,
    UsageDetails,
    UserDetails,
    UserKudosDetails,
)
from openhorde.domain import accounts, roles, sharedkeys, workers
from openhorde.domain.billing import tiers
from openhorde.domain.kudos import escrow
from openhorde.storage import ledger_queries
from openhorde.storage.tables import User

router = APIRouter(tags=["users"])

MAX_USERS_PAGE = 10_000
"""Pages beyond this are empty, as on the AI Horde."""


async def _details(session: AsyncSession, user: User, privileged: bool) -> UserDetails:
    worker_ids = await workers.worker_ids_of(session, user.id)
    totals = await ledger_queries.user_totals_by_kind(session, user.id)
    kudos_details = UserKudosDetails(
        accumulated=(totals.get("+generation", 0) + totals.get("-generation", 0)) / 100,
        gifted=-totals.get("-transfer", 0) / 100,
        received=totals.get("+transfer", 0) / 100,
        admin=(totals.get("+admin", 0) + totals.get("-admin", 0)) / 100,
        awarded=totals.get("+award", 0) / 100,
        recurring=totals.get("+supporter", 0) / 100,  # the Supporter tier's monthly grants (part D1)
    )
    details = UserDetails(
        username=user.display_name,
        id=user.id,
        kudos=user.kudos_cents / 100,
        evaluating_kudos=await escrow.evaluating_kudos(session, user.id),  # held in escrow (part D2)
        concurrency=user.concurrency,
        worker_invited=user.worker_invited,
        moderator=user.is_moderator,
        kudos_details=kudos_details,
        worker_count=len(worker_ids),
        worker_ids=worker_ids if privileged or user.public_workers else None,
        trusted=user.is_trusted,
        flagged=user.is_flagged,
        vpn=user.is_vpn,
        service=user.is_service,
        education=user.is_education,
        customizer=user.is_customizer,
        special=user.is_special,
        deleted=user.is_deleted,
        contact=user.contact if privileged else None,
        admin_comment=user.admin_comment if privileged else None,
        account_age=int(time.time() - user.created_at),
        usage=UsageDetails(megapixelsteps=round(user.usage_megapixelsteps, 2), requests=user.usage_requests),
        contributions=ContributionsDetails(
            megapixelsteps=round(user.contribution_megapixelsteps, 2),
            fulfillments=user.contribution_fulfillments,
        ),
    )
    if privileged:  # the account's tier (part D1): only for the user themself, moderators and admins
        info = await tiers.tier_of(session, user)
        details.tier, details.supporter_until = info.tier.value, info.supporter_until
    return details


def _may_see_private(viewer: User | None, user: User) -> bool:
    return viewer is not None and (viewer.id == user.id or viewer.is_moderator or viewer.is_admin)


@router.post("/register", response_model=RegisteredUser, status_code=201, summary="Create an account (OpenHorde)")
async def register(body: RegisterInput, session: SessionDep, ctx: ContextDep) -> RegisteredUser:
    created = await accounts.create_user(session, ctx.secret, body.username)
    return RegisteredUser(id=created.user.id, username=created.user.display_name, apikey=created.api_key)


@router.get(
    "/find_user",
    response_model=UserDetails,
    response_model_exclude_none=True,
    summary="The account of the API key sent",
)
async def find_user(session: SessionDep, ctx: ContextDep, caller: ApiCaller) -> UserDetails:
    if caller.sharedkey is not None:  # a shared key's holder sees the owner's public details only (part C)
        details = await _details(session, caller.user, privileged=False)
        details.username = f"{details.username} (Shared Key: {caller.sharedkey.name})"
        return details
    details = await _details(session, caller.user, privileged=True)
    details.sharedkey_ids = await sharedkeys.keys_of(session, ctx.secret, caller.user.id)
    return details


@router.get("/users", response_model=list[UserDetails], response_model_exclude_none=True, summary="Users, paged")
async def list_users(
    session: SessionDep,
    page: Annotated[int, Query(ge=1)] = 1,
    sort: Annotated[Literal["kudos", "age"], Query()] = "kudos",
) -> list[UserDetails]:
    if page > MAX_USERS_PAGE:
        return []
    return [await _details(session, u, privileged=False) for u in await accounts.list_users(session, page, sort)]


@router.get("/users/{user_id}", response_model=UserDetails, response_model_exclude_none=True, summary="A user")
async def get_user(user_id: int, session: SessionDep, ctx: ContextDep, viewer: OptionalUser) -> UserDetails:
    user = await accounts.get_user(session, user_id)
    details = await _details(session, user, privileged=_may_see_private(viewer, user))
    if viewer is not None and viewer.id == user.id:  # a shared key is a credential: its owner's eyes only
        details.sharedkey_ids = await sharedkeys.keys_of(session, ctx.secret, user.id)
    return details


@router.put("/users/{user_id}", summary="Change a user (admin, moderator or the user)")
async def modify_user(user_id: int, body: ModifyUserInput, session: SessionDep, actor: ApiUser) -> dict[str, object]:
    target = await accounts.get_user(session, user_id)
    changes = roles.UserChanges(**body.model_dump(exclude={"usage_multiplier", "monthly_kudos"}))
    return await roles.update_user(session, actor, target, changes)
