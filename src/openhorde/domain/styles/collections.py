"""Style collections: named, ordered lists of styles of one type (``/collections``).

A request whose ``style`` names a collection runs with one of its styles, picked at random (``apply.py``).
Creating one needs no role but a registered account, as on the AI Horde; its styles are given by id or name.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from openhorde.domain.accounts import Account
from openhorde.domain.styles.common import (
    INFO_MAX_LENGTH,
    PAGE_SIZE,
    CollectionView,
    Style,
    StyleCollection,
    check_may_change,
    check_may_create,
    check_sort,
    clean_style_name,
    page_offset,
    parse_reference,
    unique_name,
)
from openhorde.domain.styles.records import find_style
from openhorde.errors import BadRequest, CollectionNotFound, StyleMismatch
from openhorde.storage.store import Store

MAX_STYLES = 100
"""Styles in one collection (ours: the AI Horde sets no bound)."""
COLLECTION_TYPES = ("image", "text", "all")


@dataclass
class CollectionFields:
    """What a collection's creation or change sets; ``None`` leaves a field as it is."""

    name: str | None = None
    info: str | None = None
    public: bool | None = None
    styles: list[str] | None = None


async def _styles(store: Store, wanted: list[str]) -> list[Style]:
    """The styles named by id or name, in order; all of one type."""
    if not wanted:
        raise BadRequest("A collection has to include at least 1 style")
    if len(wanted) > MAX_STYLES:
        raise BadRequest(f"A collection has at most {MAX_STYLES} styles.")
    found: list[Style] = []
    for text in wanted:
        style = await store.styles.get(text) or await find_style(store, text)
        if style is None:
            raise BadRequest(f"A style with name '{text}' cannot be found")
        if found and style.style_type != found[0].style_type:
            raise StyleMismatch("Cannot mix image and text styles in the same collection")
        found.append(style)
    return found


def _clean_info(info: str) -> str:
    if len(info) > INFO_MAX_LENGTH:
        raise BadRequest(f"A collection's info has at most {INFO_MAX_LENGTH} characters.")
    return info.strip()


async def create_collection(
    store: Store, user: Account, fields: CollectionFields, now: float | None = None
) -> StyleCollection:
    """Create a collection of styles owned by ``user`` (any registered user)."""
    check_may_create(user, "collections")
    styles = await _styles(store, fields.styles or [])
    moment = now or time.time()
    collection = StyleCollection(
        id=str(uuid.uuid4()),
        style_type=styles[0].style_type,
        user_id=user.id,
        name=clean_style_name(fields.name or "", "collection name"),
        info=_clean_info(fields.info) if fields.info is not None else "",
        public=True if fields.public is None else fields.public,
        use_count=0,
        created_at=moment,
        updated_at=moment,
    )
    if not await store.styles.create_collection(collection, [s.id for s in styles]):
        raise BadRequest(f"Collection with name '{collection.name}' already exists for user '{user.display_name}'.")
    return collection


async def get_collection(store: Store, collection_id: str) -> StyleCollection:
    """The collection with this id; ``CollectionNotFound`` otherwise."""
    collection = await store.styles.get_collection(collection_id)
    if collection is None:
        raise CollectionNotFound(f"Collection '{collection_id}' not found.")
    return collection


async def find_collection(store: Store, text: str) -> StyleCollection | None:
    """The collection a name refers to: ``user#id::collection::name`` exactly, else the oldest so named."""
    reference = parse_reference(text)
    if reference.kind not in (None, "collection"):
        return None
    return await store.styles.collection_by_name(reference.name, reference.user_id)


async def collection_by_name(store: Store, name: str) -> StyleCollection:
    """The collection a name refers to (``find_collection``); ``CollectionNotFound`` otherwise."""
    collection = await find_collection(store, name)
    if collection is None:
        raise CollectionNotFound(f"Collection '{name}' not found.")
    return collection


async def list_collections(store: Store, sort: str, page: int, collection_type: str) -> list[StyleCollection]:
    """One page of 25 public collections, most used or newest first, of one type or ``all``."""
    check_sort(sort)
    if collection_type not in COLLECTION_TYPES:
        raise BadRequest("'type' needs to be one of ['all', 'image', 'text']")
    wanted = None if collection_type == "all" else collection_type
    return await store.styles.public_collections(wanted, sort, page_offset(page), PAGE_SIZE)


async def views(store: Store, collections: list[StyleCollection]) -> list[CollectionView]:
    """Collections with their creators' names and their styles' ids and unique names."""
    members = await store.styles.members_of([c.id for c in collections])
    owner_ids = {c.user_id for c in collections} | {m.user_id for ms in members.values() for m in ms}
    owners = await store.accounts.many(owner_ids)
    result = []
    for collection in collections:
        styles = [
            (m.style_id, unique_name(owners[m.user_id], "style", m.name) if m.user_id in owners else m.name)
            for m in members.get(collection.id, [])
        ]
        owner = owners.get(collection.user_id)
        result.append(CollectionView(collection, owner.display_name if owner is not None else "", styles))
    return result


async def update_collection(
    store: Store, collection: StyleCollection, user: Account, fields: CollectionFields, now: float | None = None
) -> bool:
    """Change a collection (its owner or a moderator); ``False`` if nothing was asked to change."""
    await check_may_change(store, collection.user_id, user, "modify", "collection", collection.id)
    styles = await _styles(store, fields.styles) if fields.styles else None
    if styles is not None and styles[0].style_type != collection.style_type:
        raise StyleMismatch("Cannot mix image and text styles in the same collection")
    changes: dict[str, Any] = {}
    if fields.name:
        changes["name"] = clean_style_name(fields.name, "collection name")
    if fields.info is not None:
        changes["info"] = _clean_info(fields.info)
    if fields.public is not None:
        changes["public"] = fields.public
    if not changes and styles is None:
        return False
    changes["updated_at"] = now or time.time()
    if not await store.styles.change_collection(collection.id, changes):
        raise BadRequest(f"Collection with name '{changes['name']}' already exists for this user.")
    if styles is not None:
        await store.styles.set_members(collection.id, [s.id for s in styles])
    return True


async def delete_collection(store: Store, collection: StyleCollection, user: Account) -> None:
    """Delete a collection (its owner or a moderator); its styles stay."""
    await check_may_change(store, collection.user_id, user, "delete", "collection", collection.id)
    await store.styles.delete_collection(collection.id)
