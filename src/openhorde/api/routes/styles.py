"""``/styles/image`` and ``/styles/text``: styles, their example images, and text styles (none here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, ContextDep, OptionalUser, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.common import iso_time
from openhorde.api.schemas.styles import (
    SimpleResponse,
    StyleExample,
    StyleExampleInput,
    StyleExamplePatch,
    StyleInput,
    StyleModify,
    StylePatch,
    StyleStable,
)
from openhorde.domain.styles import records
from openhorde.domain.styles.common import IMAGE, MAX_PAGE, StyleView
from openhorde.domain.styles.records import StyleFields
from openhorde.errors import TextStylesUnsupported

router = APIRouter(prefix="/styles", tags=["styles"])

TEXT = "text"
Sort = Annotated[str, Query(description="'popular' (most used first) or 'age' (newest first).")]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Which page of 25 styles.")]
Tag = Annotated[str | None, Query(max_length=100, description="Only styles with this tag.")]
Model = Annotated[str | None, Query(max_length=255, description="Only styles using this model.")]


def _stable(view: StyleView) -> StyleStable:
    style = view.style
    return StyleStable(
        name=style.name,
        info=style.info,
        prompt=style.prompt,
        params=style.params,
        public=style.public,
        nsfw=style.nsfw,
        tags=list(style.tags),
        models=list(style.models),
        sharedkey=view.sharedkey,
        id=style.id,
        use_count=style.use_count,
        creator=view.creator,
        examples=[StyleExample(url=e.url, primary=e.is_primary, id=e.id) for e in view.examples],
        updated=iso_time(style.updated_at),
    )


def _fields(body: StyleInput | StylePatch) -> StyleFields:
    params = None
    if body.params is not None:
        params = body.params.model_dump(exclude_none=True)
    elif isinstance(body, StyleInput):
        params = {}
    return StyleFields(
        name=body.name,
        info=body.info,
        prompt=body.prompt,
        params=params,
        public=body.public,
        nsfw=body.nsfw,
        tags=body.tags,
        models=body.models,
        sharedkey=body.sharedkey,
    )


@router.get("/image", response_model=list[StyleStable], response_model_exclude_none=True, summary="Image styles")
async def list_image_styles(
    store: StoreDep,
    ctx: ContextDep,
    viewer: OptionalUser,
    sort: Sort = "popular",
    page: Page = 1,
    tag: Tag = None,
    model: Model = None,
) -> list[StyleStable]:
    styles = await records.list_styles(store, IMAGE, sort, page, tag, model)
    return [_stable(v) for v in await records.views(store, ctx.secret, styles, viewer)]


@router.post("/image", response_model=StyleModify, response_model_exclude_none=True, summary="Create an image style")
async def create_image_style(body: StyleInput, store: StoreDep, ctx: ContextDep, user: ApiUser) -> StyleModify:
    style = await records.create_style(store, ctx, user, _fields(body))
    return StyleModify(id=style.id, warnings=[])


@router.get("/image/{style_id}", response_model=StyleStable, response_model_exclude_none=True, summary="An image style")
async def get_image_style(style_id: str, store: StoreDep, ctx: ContextDep, viewer: OptionalUser) -> StyleStable:
    style = await records.get_style(store, style_id)
    [view] = await records.views(store, ctx.secret, [style], viewer)
    return _stable(view)


@router.patch(
    "/image/{style_id}",
    response_model=StyleModify,
    response_model_exclude_none=True,
    summary="Change an image style (its creator or a moderator)",
)
async def modify_image_style(
    style_id: str, body: StylePatch, store: StoreDep, ctx: ContextDep, user: ApiUser
) -> StyleModify:
    style = await records.get_style(store, style_id)
    changed = await records.update_style(store, ctx, style, user, _fields(body))
    return StyleModify(id=style.id, warnings=[] if changed else None)


@router.delete("/image/{style_id}", response_model=SimpleResponse, summary="Delete an image style")
async def delete_image_style(style_id: str, store: StoreDep, user: ApiUser) -> SimpleResponse:
    await records.delete_style(store, await records.get_style(store, style_id), user)
    return SimpleResponse()


@router.get(
    "/image_by_name/{style_name}",
    response_model=StyleStable,
    response_model_exclude_none=True,
    summary="An image style by name (`user#id::style::name`, or a bare name)",
)
async def get_image_style_by_name(
    style_name: str, store: StoreDep, ctx: ContextDep, viewer: OptionalUser
) -> StyleStable:
    style = await records.style_by_name(store, style_name)
    [view] = await records.views(store, ctx.secret, [style], viewer)
    return _stable(view)


@router.post(
    "/image/{style_id}/example",
    response_model=StyleModify,
    response_model_exclude_none=True,
    summary="Add an example image to a style",
)
async def add_example(style_id: str, body: StyleExampleInput, store: StoreDep, user: ApiUser) -> StyleModify:
    style = await records.get_style(store, style_id)
    example = await records.add_example(store, style, user, body.url, body.primary)
    return StyleModify(id=example.id, warnings=[])


@router.patch(
    "/image/{style_id}/example/{example_id}",
    response_model=StyleModify,
    response_model_exclude_none=True,
    summary="Change an example image of a style",
)
async def change_example(
    style_id: str, example_id: str, body: StyleExamplePatch, store: StoreDep, user: ApiUser
) -> StyleModify:
    style = await records.get_style(store, style_id)
    example = await records.change_example(store, style, user, example_id, body.url, body.primary)
    return StyleModify(id=example.id, warnings=[])


@router.delete(
    "/image/{style_id}/example/{example_id}", response_model=SimpleResponse, summary="Delete an example image"
)
async def delete_example(style_id: str, example_id: str, store: StoreDep, user: ApiUser) -> SimpleResponse:
    style = await records.get_style(store, style_id)
    await records.delete_example(store, style, user, example_id)
    return SimpleResponse()


# Text styles. This horde generates images only, so it has none: its lists are empty, an id or name is not found
# (or, for an image style, is of the wrong type, as the AI Horde answers), and creating one is refused.


@router.get("/text", response_model=list[StyleStable], summary="Text styles (none on an image-only horde)")
async def list_text_styles(store: StoreDep, sort: Sort = "popular", page: Page = 1) -> list[StyleStable]:
    await records.list_styles(store, TEXT, sort, page, None, None)
    return []


@router.post(
    "/text",
    response_model=StyleModify,
    responses=errors(400),
    summary="Create a text style (refused: image-only horde)",
)
async def create_text_style() -> StyleModify:
    raise TextStylesUnsupported()


@router.get("/text/{style_id}", response_model=StyleStable, summary="A text style")
async def get_text_style(style_id: str, store: StoreDep) -> StyleStable:
    await records.get_style(store, style_id, TEXT)
    raise TextStylesUnsupported()  # unreachable while no text style can exist


@router.patch("/text/{style_id}", response_model=StyleModify, summary="Change a text style")
async def modify_text_style(style_id: str, store: StoreDep) -> StyleModify:
    await records.get_style(store, style_id, TEXT)
    raise TextStylesUnsupported()


@router.delete("/text/{style_id}", response_model=SimpleResponse, summary="Delete a text style")
async def delete_text_style(style_id: str, store: StoreDep) -> SimpleResponse:
    await records.get_style(store, style_id, TEXT)
    raise TextStylesUnsupported()


@router.get("/text_by_name/{style_name}", response_model=StyleStable, summary="A text style by name")
async def get_text_style_by_name(style_name: str, store: StoreDep) -> StyleStable:
    await records.style_by_name(store, style_name, TEXT)
    raise TextStylesUnsupported()
