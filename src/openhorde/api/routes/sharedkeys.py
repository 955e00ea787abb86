"""``/sharedkeys``: keys a user lends out to generate on their account."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from openhorde.api.deps import ApiUser, ContextDep, SessionDep
from openhorde.api.schemas.sharedkeys import SharedKeyDetails, SharedKeyInput, SimpleResponse
from openhorde.domain import sharedkeys
from openhorde.domain.sharedkeys import SharedKeyFields, SharedKeyView

router = APIRouter(prefix="/sharedkeys", tags=["sharedkeys"])


def _details(view: SharedKeyView) -> SharedKeyDetails:
    row = view.row
    expiry = datetime.fromtimestamp(row.expires_at, tz=UTC).isoformat() if row.expires_at is not None else None
    return SharedKeyDetails(
        id=view.key,
        username=view.owner.display_name,
        name=row.name,
        kudos=row.kudos_limit,
        expiry=expiry,
        utilized=row.utilized_cents // 100,
        max_image_pixels=row.max_image_pixels,
        max_image_steps=row.max_image_steps,
        max_text_tokens=row.max_text_tokens,
    )


def _fields(body: SharedKeyInput) -> SharedKeyFields:
    return SharedKeyFields(**body.model_dump())


@router.put("", response_model=SharedKeyDetails, summary="Create a shared key for this user")
async def create_shared_key(
    body: SharedKeyInput, session: SessionDep, ctx: ContextDep, user: ApiUser
) -> SharedKeyDetails:
    return _details(await sharedkeys.create(session, ctx.settings, ctx.secret, user, _fields(body)))


@router.get("/{sharedkey_id}", response_model=SharedKeyDetails, summary="A shared key (whoever holds it)")
async def get_shared_key(sharedkey_id: str, session: SessionDep, ctx: ContextDep) -> SharedKeyDetails:
    return _details(await sharedkeys.get(session, ctx.secret, sharedkey_id))


@router.patch("/{sharedkey_id}", response_model=SharedKeyDetails, summary="Change a shared key (its owner)")
async def modify_shared_key(
    sharedkey_id: str, body: SharedKeyInput, session: SessionDep, ctx: ContextDep, user: ApiUser
) -> SharedKeyDetails:
    return _details(await sharedkeys.modify(session, ctx.secret, user, sharedkey_id, _fields(body)))


@router.delete("/{sharedkey_id}", response_model=SimpleResponse, summary="Delete a shared key (its owner)")
async def delete_shared_key(sharedkey_id: str, session: SessionDep, ctx: ContextDep, user: ApiUser) -> SimpleResponse:
    await sharedkeys.delete(session, ctx.secret, user, sharedkey_id)
    return SimpleResponse()
