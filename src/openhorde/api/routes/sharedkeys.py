"""``/sharedkeys``: keys a user lends out to generate on their account."""

from __future__ import annotations

from fastapi import APIRouter

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.schemas.common import iso_time
from openhorde.api.schemas.sharedkeys import SharedKeyDetails, SharedKeyInput, SimpleResponse
from openhorde.domain import sharedkeys
from openhorde.domain.sharedkeys import SharedKeyFields, SharedKeyView

router = APIRouter(prefix="/sharedkeys", tags=["sharedkeys"])


def _details(view: SharedKeyView) -> SharedKeyDetails:
    key = view.sharedkey
    expiry = iso_time(key.expires_at) if key.expires_at is not None else None
    return SharedKeyDetails(
        id=view.key,
        username=view.owner.display_name,
        name=key.name,
        kudos=key.kudos_limit,
        expiry=expiry,
        utilized=key.utilized_cents // 100,
        max_image_pixels=key.max_image_pixels,
        max_image_steps=key.max_image_steps,
        max_text_tokens=key.max_text_tokens,
    )


def _fields(body: SharedKeyInput) -> SharedKeyFields:
    return SharedKeyFields(**body.model_dump())


@router.put("", response_model=SharedKeyDetails, summary="Create a shared key for this user")
async def create_shared_key(body: SharedKeyInput, store: StoreDep, ctx: ContextDep, user: ApiUser) -> SharedKeyDetails:
    return _details(await sharedkeys.create(store, ctx.settings, ctx.secret, user, _fields(body)))


@router.get("/{sharedkey_id}", response_model=SharedKeyDetails, summary="A shared key (whoever holds it)")
async def get_shared_key(sharedkey_id: str, store: StoreDep, ctx: ContextDep) -> SharedKeyDetails:
    return _details(await sharedkeys.get(store, ctx.secret, sharedkey_id))


@router.patch("/{sharedkey_id}", response_model=SharedKeyDetails, summary="Change a shared key (its owner)")
async def modify_shared_key(
    sharedkey_id: str, body: SharedKeyInput, store: StoreDep, ctx: ContextDep, user: ApiUser
) -> SharedKeyDetails:
    return _details(await sharedkeys.modify(store, ctx.secret, user, sharedkey_id, _fields(body)))


@router.delete("/{sharedkey_id}", response_model=SimpleResponse, summary="Delete a shared key (its owner)")
async def delete_shared_key(sharedkey_id: str, store: StoreDep, ctx: ContextDep, user: ApiUser) -> SimpleResponse:
    await sharedkeys.delete(store, ctx.secret, user, sharedkey_id)
    return SimpleResponse()
