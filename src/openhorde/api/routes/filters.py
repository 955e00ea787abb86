"""``/filters``: moderators' regex prompt filters and a prompt check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.schemas.moderation import (
    FilterCheckInput,
    FilterDetails,
    FilterPromptSuspicion,
    FilterRegex,
    PatchExistingFilter,
    PutNewFilter,
    SimpleResponse,
)
from openhorde.domain.moderation import prompt_filters
from openhorde.domain.moderation.prompt_filters import FilterFields, PromptFilterEntry

router = APIRouter(prefix="/filters", tags=["moderation"])


def _details(entry: PromptFilterEntry) -> FilterDetails:
    return FilterDetails(
        id=entry.id,
        regex=entry.regex,
        filter_type=entry.filter_type,
        description=entry.description,
        replacement=entry.replacement,
        user=entry.author,
    )


@router.get("", response_model=list[FilterDetails], summary="Moderators: list the filters")
async def list_filters(
    store: StoreDep,
    user: ApiUser,
    filter_type: Annotated[int | None, Query(ge=10, le=29)] = None,
    contains: Annotated[str | None, Query(max_length=100)] = None,
) -> list[FilterDetails]:
    rows = await prompt_filters.list_filters(store, user, filter_type, contains)
    return [_details(entry) for entry in rows]


@router.put("", status_code=201, response_model=FilterDetails, summary="Moderators: add a regex filter")
async def add_filter(body: PutNewFilter, store: StoreDep, ctx: ContextDep, user: ApiUser) -> FilterDetails:
    fields = FilterFields(body.regex, body.filter_type, body.description, body.replacement)
    return _details(await prompt_filters.create_filter(store, ctx, user, fields))


@router.post("", response_model=FilterPromptSuspicion, summary="Moderators: how suspicious a prompt is")
async def check_prompt(
    body: FilterCheckInput, store: StoreDep, ctx: ContextDep, user: ApiUser
) -> FilterPromptSuspicion:
    score, matches = await prompt_filters.check_prompt(store, ctx, user, body.prompt, body.filter_type)
    return FilterPromptSuspicion(suspicion=score, matches=matches)


@router.get("/regex", response_model=list[FilterRegex], summary="Moderators: each type's filters as one regex")
async def regex(
    store: StoreDep, user: ApiUser, filter_type: Annotated[int | None, Query(ge=10, le=29)] = None
) -> list[FilterRegex]:
    found = await prompt_filters.regex_per_type(store, user, filter_type)
    return [FilterRegex(filter_type=t, regex=r) for t, r in found]


@router.get("/{filter_id}", response_model=FilterDetails, summary="Moderators: one filter")
async def get_filter(filter_id: str, store: StoreDep, user: ApiUser) -> FilterDetails:
    return _details(await prompt_filters.get_filter(store, user, filter_id))


@router.patch("/{filter_id}", response_model=FilterDetails, summary="Moderators: change a filter")
async def patch_filter(
    filter_id: str, body: PatchExistingFilter, store: StoreDep, ctx: ContextDep, user: ApiUser
) -> FilterDetails:
    fields = FilterFields(body.regex, body.filter_type, body.description, body.replacement)
    return _details(await prompt_filters.update_filter(store, ctx, user, filter_id, fields))


@router.delete("/{filter_id}", response_model=SimpleResponse, summary="Moderators: delete a filter")
async def delete_filter(filter_id: str, store: StoreDep, ctx: ContextDep, user: ApiUser) -> SimpleResponse:
    await prompt_filters.delete_filter(store, ctx, user, filter_id)
    return SimpleResponse(message="OK")
