"""``/filters``: moderators' regex prompt filters and a prompt check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, ContextDep, SessionDep
from openhorde.api.schemas.moderation import (
    FilterCheckInput,
    FilterDetails,
    FilterPromptSuspicion,
    FilterRegex,
    PatchExistingFilter,
    PutNewFilter,
    SimpleResponse,
)
from openhorde.domain.accounts import get_user
from openhorde.domain.moderation import prompt_filters
from openhorde.domain.moderation.prompt_filters import FilterFields
from openhorde.storage.tables import PromptFilter

router = APIRouter(prefix="/filters", tags=["moderation"])


async def _details(session: SessionDep, row: PromptFilter) -> FilterDetails:
    user = "unknown"
    if row.user_id is not None:
        user = (await get_user(session, row.user_id)).display_name
    return FilterDetails(
        id=row.id,
        regex=row.regex,
        filter_type=row.filter_type,
        description=row.description,
        replacement=row.replacement,
        user=user,
    )


@router.get("", response_model=list[FilterDetails], summary="Moderators: list the filters")
async def list_filters(
    session: SessionDep,
    user: ApiUser,
    filter_type: Annotated[int | None, Query(ge=10, le=29)] = None,
    contains: Annotated[str | None, Query(max_length=100)] = None,
) -> list[FilterDetails]:
    rows = await prompt_filters.list_filters(session, user, filter_type, contains)
    return [await _details(session, row) for row in rows]


@router.put("", status_code=201, response_model=FilterDetails, summary="Moderators: add a regex filter")
async def add_filter(body: PutNewFilter, session: SessionDep, ctx: ContextDep, user: ApiUser) -> FilterDetails:
    fields = FilterFields(body.regex, body.filter_type, body.description, body.replacement)
    return await _details(session, await prompt_filters.create_filter(session, ctx, user, fields))


@router.post("", response_model=FilterPromptSuspicion, summary="Moderators: how suspicious a prompt is")
async def check_prompt(
    body: FilterCheckInput, session: SessionDep, ctx: ContextDep, user: ApiUser
) -> FilterPromptSuspicion:
    score, matches = await prompt_filters.check_prompt(session, ctx, user, body.prompt, body.filter_type)
    return FilterPromptSuspicion(suspicion=score, matches=matches)


@router.get("/regex", response_model=list[FilterRegex], summary="Moderators: each type's filters as one regex")
async def regex(
    session: SessionDep, user: ApiUser, filter_type: Annotated[int | None, Query(ge=10, le=29)] = None
) -> list[FilterRegex]:
    found = await prompt_filters.regex_per_type(session, user, filter_type)
    return [FilterRegex(filter_type=t, regex=r) for t, r in found]


@router.get("/{filter_id}", response_model=FilterDetails, summary="Moderators: one filter")
async def get_filter(filter_id: str, session: SessionDep, user: ApiUser) -> FilterDetails:
    return await _details(session, await prompt_filters.get_filter(session, user, filter_id))


@router.patch("/{filter_id}", response_model=FilterDetails, summary="Moderators: change a filter")
async def patch_filter(
    filter_id: str, body: PatchExistingFilter, session: SessionDep, ctx: ContextDep, user: ApiUser
) -> FilterDetails:
    fields = FilterFields(body.regex, body.filter_type, body.description, body.replacement)
    return await _details(session, await prompt_filters.update_filter(session, ctx, user, filter_id, fields))


@router.delete("/{filter_id}", response_model=SimpleResponse, summary="Moderators: delete a filter")
async def delete_filter(filter_id: str, session: SessionDep, ctx: ContextDep, user: ApiUser) -> SimpleResponse:
    await prompt_filters.delete_filter(session, ctx, user, filter_id)
    return SimpleResponse(message="OK")
