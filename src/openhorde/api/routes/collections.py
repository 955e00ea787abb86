"""``/collections`` and ``/collection_by_name``: ordered lists of styles, one picked at random per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, StoreDep
from openhorde.api.schemas.styles import (
    CollectionDetails,
    CollectionInput,
    CollectionPatch,
    CollectionStyle,
    SimpleResponse,
    StyleModify,
)
from openhorde.domain.styles import collections
from openhorde.domain.styles.collections import CollectionFields
from openhorde.domain.styles.common import MAX_PAGE, CollectionView

router = APIRouter(tags=["collections"])


def _details(view: CollectionView) -> CollectionDetails:
    collection = view.collection
    return CollectionDetails(
        id=collection.id,
        name=collection.name,
        type=collection.style_type,
        info=collection.info,
        public=collection.public,
        styles=[CollectionStyle(id=style_id, name=name) for style_id, name in view.styles],
        use_count=collection.use_count,
    )


@router.get("/collections", response_model=list[CollectionDetails], summary="Style collections")
async def list_collections(
    store: StoreDep,
    sort: Annotated[str, Query(description="'popular' (most used first) or 'age' (newest first).")] = "popular",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Which page of 25 collections.")] = 1,
    type: Annotated[str, Query(description="'image', 'text' or 'all'.")] = "all",
) -> list[CollectionDetails]:
    found = await collections.list_collections(store, sort, page, type)
    return [_details(v) for v in await collections.views(store, found)]


@router.post(
    "/collections", response_model=StyleModify, response_model_exclude_none=True, summary="Create a collection"
)
async def create_collection(body: CollectionInput, store: StoreDep, user: ApiUser) -> StyleModify:
    fields = CollectionFields(name=body.name, info=body.info, public=body.public, styles=body.styles)
    collection = await collections.create_collection(store, user, fields)
    return StyleModify(id=collection.id, warnings=[])


@router.get("/collections/{collection_id}", response_model=CollectionDetails, summary="A collection")
async def get_collection(collection_id: str, store: StoreDep) -> CollectionDetails:
    [view] = await collections.views(store, [await collections.get_collection(store, collection_id)])
    return _details(view)


@router.patch(
    "/collections/{collection_id}",
    response_model=StyleModify,
    response_model_exclude_none=True,
    summary="Change a collection (its creator or a moderator)",
)
async def modify_collection(collection_id: str, body: CollectionPatch, store: StoreDep, user: ApiUser) -> StyleModify:
    collection = await collections.get_collection(store, collection_id)
    fields = CollectionFields(name=body.name, info=body.info, public=body.public, styles=body.styles)
    changed = await collections.update_collection(store, collection, user, fields)
    return StyleModify(id=collection.id, warnings=[] if changed else None)


@router.delete("/collections/{collection_id}", response_model=SimpleResponse, summary="Delete a collection")
async def delete_collection(collection_id: str, store: StoreDep, user: ApiUser) -> SimpleResponse:
    await collections.delete_collection(store, await collections.get_collection(store, collection_id), user)
    return SimpleResponse()


@router.get(
    "/collection_by_name/{collection_name}",
    response_model=CollectionDetails,
    summary="A collection by name (`user#id::collection::name`, or a bare name)",
)
async def get_collection_by_name(collection_name: str, store: StoreDep) -> CollectionDetails:
    [view] = await collections.views(store, [await collections.collection_by_name(store, collection_name)])
    return _details(view)
