"""``/users``, ``/find_user`` and ``/register``: accounts."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiCaller, ApiUser, ContextDep, OptionalUser, StoreDep
from openhorde.api.schemas.users import (
    ContributionsDetails,
    ModifyUserInput,
    RegisteredUser,
    RegisterInput,
    SimpleResponse,
    UsageDetails,
    UserDetails,
    UserKudosDetails,
    UserStyle,
)
from openhorde.domain import account_deletion, accounts, profiles, roles, sharedkeys
from openhorde.domain.accounts import Account

router = APIRouter(tags=["users"])

MAX_USERS_PAGE = 10_000
"""Pages beyond this are empty, as on the AI Horde."""


def _details(found: profiles.Profile, privileged: bool) -> UserDetails:
    user, totals, kudos = found.account, found.totals, found.kudos
    return UserDetails(
        username=user.display_name,
        id=user.id,
        kudos=totals.kudos_cents / 100,
        evaluating_kudos=found.evaluating_kudos,
        concurrency=user.concurrency,
        worker_invited=user.worker_invited,
        moderator=user.is_moderator,
        kudos_details=UserKudosDetails(
            accumulated=kudos.accumulated,
            gifted=kudos.gifted,
            received=kudos.received,
            admin=kudos.admin,
            awarded=kudos.awarded,
            recurring=kudos.recurring,
            styled=kudos.styled,
        ),
        worker_count=len(found.worker_ids),
        worker_ids=found.worker_ids if privileged or user.public_workers else None,
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
        usage=UsageDetails(megapixelsteps=round(totals.usage_megapixelsteps, 2), requests=totals.usage_requests),
        contributions=ContributionsDetails(
            megapixelsteps=round(totals.contribution_megapixelsteps, 2),
            fulfillments=totals.contribution_fulfillments,
        ),
        tier=found.tier,
        supporter_until=found.supporter_until,
        admin=user.is_admin if privileged else None,
        styles=[UserStyle(name=s.name, id=s.id, type=s.type) for s in found.styles],
    )


async def _details_of(store: StoreDep, user: Account, privileged: bool) -> UserDetails:
    return _details(await profiles.profile(store, user, privileged), privileged)


def _may_see_private(viewer: Account | None, user: Account) -> bool:
    return viewer is not None and (viewer.id == user.id or viewer.is_moderator or viewer.is_admin)


@router.post("/register", response_model=RegisteredUser, status_code=201, summary="Create an account (OpenHorde)")
async def register(body: RegisterInput, store: StoreDep, ctx: ContextDep) -> RegisteredUser:
    created = await accounts.create_user(store, ctx.secret, body.username)
    return RegisteredUser(id=created.user.id, username=created.user.display_name, apikey=created.api_key)


@router.get(
    "/find_user",
    response_model=UserDetails,
    response_model_exclude_none=True,
    summary="The account of the API key sent",
)
async def find_user(store: StoreDep, ctx: ContextDep, caller: ApiCaller) -> UserDetails:
    if caller.sharedkey is not None:  # a shared key's holder sees the owner's public details only (part C)
        details = await _details_of(store, caller.user, privileged=False)
        details.username = f"{details.username} (Shared Key: {caller.sharedkey.name})"
        return details
    details = await _details_of(store, caller.user, privileged=True)
    details.sharedkey_ids = await sharedkeys.keys_of(store, ctx.secret, caller.user.id)
    return details


@router.get("/users", response_model=list[UserDetails], response_model_exclude_none=True, summary="Users, paged")
async def list_users(
    store: StoreDep,
    page: Annotated[int, Query(ge=1)] = 1,
    sort: Annotated[Literal["kudos", "age"], Query()] = "kudos",
) -> list[UserDetails]:
    if page > MAX_USERS_PAGE:
        return []
    return [await _details_of(store, u, privileged=False) for u in await accounts.list_users(store, page, sort)]


@router.get("/users/{user_id}", response_model=UserDetails, response_model_exclude_none=True, summary="A user")
async def get_user(user_id: int, store: StoreDep, ctx: ContextDep, viewer: OptionalUser) -> UserDetails:
    user = await accounts.get_user(store, user_id)
    details = await _details_of(store, user, privileged=_may_see_private(viewer, user))
    if viewer is not None and viewer.id == user.id:  # a shared key is a credential: its owner's eyes only
        details.sharedkey_ids = await sharedkeys.keys_of(store, ctx.secret, user.id)
    return details


@router.put("/users/{user_id}", summary="Change a user (admin, moderator or the user)")
async def modify_user(user_id: int, body: ModifyUserInput, store: StoreDep, actor: ApiUser) -> dict[str, object]:
    target = await accounts.get_user(store, user_id)
    changes = roles.UserChanges(**body.model_dump(exclude={"usage_multiplier", "monthly_kudos"}))
    return await roles.update_user(store, actor, target, changes)


@router.delete(
    "/users/{user_id}",
    response_model=SimpleResponse,
    summary="Delete a user (the user or a moderator); a moderator's second call wipes an inactive deleted account",
)
async def delete_user(user_id: int, store: StoreDep, ctx: ContextDep, actor: ApiUser) -> SimpleResponse:
    target = await accounts.get_user(store, user_id)
    await account_deletion.delete_user(store, ctx.secret, actor, target)
    return SimpleResponse()
