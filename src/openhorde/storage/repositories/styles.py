"""The styles repository: styles with their models and tags, their example images, and style collections.

A style is read as a frozen ``Style`` with its models and tags: one statement for the styles and one each for
their models and tags, whatever the number of styles. Names are unique per creator; a creation or rename that
loses a race for a name is undone in a savepoint and reported as ``False``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import SharedKey as SharedKeyRow
from openhorde.storage.tables import Style as StyleRow
from openhorde.storage.tables import StyleCollection as CollectionRow
from openhorde.storage.tables import StyleCollectionMember, StyleExample, StyleModel, StyleTag

_STYLES = cast(Table, StyleRow.__table__)
_MODELS = cast(Table, StyleModel.__table__)
_TAGS = cast(Table, StyleTag.__table__)
_EXAMPLES = cast(Table, StyleExample.__table__)
_COLLECTIONS = cast(Table, CollectionRow.__table__)
_MEMBERS = cast(Table, StyleCollectionMember.__table__)
_KEYS = cast(Table, SharedKeyRow.__table__)


@dataclass(frozen=True, slots=True)
class Style:
    """A style: its template, params, models and tags; ``use_count`` requests have used it."""

    id: str
    style_type: str
    user_id: int
    name: str
    info: str | None
    prompt: str
    params: dict[str, Any]
    public: bool
    nsfw: bool
    sharedkey_id: str | None
    use_count: int
    created_at: float
    updated_at: float
    models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Example:
    """An example image of a style."""

    id: str
    style_id: str
    url: str
    is_primary: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class StyleCollection:
    """A style collection (its styles are read apart, with ``members_of``)."""

    id: str
    style_type: str
    user_id: int
    name: str
    info: str | None
    public: bool
    use_count: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Member:
    """A style of a collection, as the collection lists it."""

    style_id: str
    name: str
    user_id: int


_ROW_FIELDS = tuple(f.name for f in fields(Style) if f.name not in ("models", "tags"))
_STYLE_COLUMNS = [_STYLES.c[name] for name in _ROW_FIELDS]
_COLLECTION_FIELDS = tuple(f.name for f in fields(StyleCollection))
_COLLECTION_COLUMNS = [_COLLECTIONS.c[name] for name in _COLLECTION_FIELDS]
_EXAMPLE_COLUMNS = [_EXAMPLES.c[f.name] for f in fields(Example)]
SORTS = {"popular": "use_count", "age": "created_at"}
"""How a list may be sorted: by use (most used first) or by age (newest first)."""

_MODELS_OF = (
    select(_MODELS.c.style_id, _MODELS.c.model)
    .where(_MODELS.c.style_id.in_(bindparam("styles", expanding=True)))
    .order_by(_MODELS.c.style_id, _MODELS.c.position)
)
_TAGS_OF = (
    select(_TAGS.c.style_id, _TAGS.c.tag)
    .where(_TAGS.c.style_id.in_(bindparam("styles", expanding=True)))
    .order_by(_TAGS.c.style_id, _TAGS.c.position)
)
_EXAMPLES_OF = (
    select(*_EXAMPLE_COLUMNS)
    .where(_EXAMPLES.c.style_id.in_(bindparam("styles", expanding=True)))
    .order_by(_EXAMPLES.c.created_at, _EXAMPLES.c.id)
)
_MEMBERS_OF = (
    select(_MEMBERS.c.collection_id, _STYLES.c.id, _STYLES.c.name, _STYLES.c.user_id)
    .join_from(_MEMBERS, _STYLES, _STYLES.c.id == _MEMBERS.c.style_id)
    .where(_MEMBERS.c.collection_id.in_(bindparam("collections", expanding=True)))
    .order_by(_MEMBERS.c.collection_id, _MEMBERS.c.position)
)
_STYLE_BOUND_TO_KEY = select(exists().where(_STYLES.c.sharedkey_id == bindparam("key")))
_KEY_HASH = select(_KEYS.c.key_hash).where(_KEYS.c.id == bindparam("key"))


def _page(statement: Select[Any], table: Table, sort: str, offset: int, limit: int) -> Select[Any]:
    column = table.c[SORTS[sort]]
    return statement.order_by(column.desc(), table.c.id).offset(offset).limit(limit)


class StyleRepository:
    """Every statement about ``styles``, ``style_models``, ``style_tags``, ``style_examples`` and collections."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _styles(self, statement: Select[Any], values: dict[str, Any] | None = None) -> list[Style]:
        rows = [dict(row._mapping) for row in await self._session.execute(statement, values or {})]
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        models: dict[str, list[str]] = {}
        for style_id, model in await self._session.execute(_MODELS_OF, {"styles": ids}):
            models.setdefault(style_id, []).append(model)
        tags: dict[str, list[str]] = {}
        for style_id, tag in await self._session.execute(_TAGS_OF, {"styles": ids}):
            tags.setdefault(style_id, []).append(tag)
        return [
            Style(**row, models=tuple(models.get(row["id"], ())), tags=tuple(tags.get(row["id"], ()))) for row in rows
        ]

    async def get(self, style_id: str) -> Style | None:
        """The style with this id."""
        found = await self._styles(select(*_STYLE_COLUMNS).where(_STYLES.c.id == style_id))
        return found[0] if found else None

    async def by_name(self, name: str, user_id: int | None = None) -> Style | None:
        """The oldest style called ``name`` (exactly), of ``user_id`` if given."""
        statement = select(*_STYLE_COLUMNS).where(_STYLES.c.name == name)
        if user_id is not None:
            statement = statement.where(_STYLES.c.user_id == user_id)
        found = await self._styles(statement.order_by(_STYLES.c.created_at, _STYLES.c.id).limit(1))
        return found[0] if found else None

    async def names_of(self, user_id: int, public_only: bool) -> list[tuple[str, str, str]]:
        """A user's styles (public ones only, if so asked) as ``(id, name, type)``, by name."""
        statement = select(_STYLES.c.id, _STYLES.c.name, _STYLES.c.style_type).where(_STYLES.c.user_id == user_id)
        if public_only:
            statement = statement.where(_STYLES.c.public.is_(True))
        rows = await self._session.execute(statement.order_by(_STYLES.c.name))
        return [(str(style_id), str(name), str(style_type)) for style_id, name, style_type in rows]

    async def public_page(
        self, style_type: str, sort: str, offset: int, limit: int, tag: str | None, model: str | None
    ) -> list[Style]:
        """One page of the public styles of a type, by use or age, having ``tag`` and ``model`` if given."""
        statement = select(*_STYLE_COLUMNS).where(_STYLES.c.style_type == style_type, _STYLES.c.public.is_(True))
        if tag is not None:
            statement = statement.where(exists().where(_TAGS.c.style_id == _STYLES.c.id, _TAGS.c.tag == tag))
        if model is not None:
            statement = statement.where(exists().where(_MODELS.c.style_id == _STYLES.c.id, _MODELS.c.model == model))
        return await self._styles(_page(statement, _STYLES, sort, offset, limit))

    async def _in_savepoint(self, *statements: Any) -> bool:
        try:
            async with self._session.begin_nested():
                for statement in statements:
                    await self._session.execute(statement)
        except IntegrityError:
            return False
        return True

    async def create(self, style: Style) -> bool:
        """Insert a style with its models and tags; ``False`` (nothing inserted) if its creator has one so named."""
        row = {name: getattr(style, name) for name in _ROW_FIELDS}
        if not await self._in_savepoint(insert(_STYLES).values(row)):
            return False
        await self.set_models(style.id, style.models)
        await self.set_tags(style.id, style.tags)
        return True

    async def change(self, style_id: str, changes: dict[str, Any]) -> bool:
        """Change a style's own columns; ``False`` (nothing changed) if a new name is taken by its creator."""
        return await self._in_savepoint(update(_STYLES).where(_STYLES.c.id == style_id).values(changes))

    async def set_models(self, style_id: str, models: Sequence[str]) -> None:
        """Replace a style's models with these, in this order."""
        await self._session.execute(delete(_MODELS).where(_MODELS.c.style_id == style_id))
        if models:
            rows = [{"style_id": style_id, "position": i, "model": m} for i, m in enumerate(models)]
            await self._session.execute(insert(_MODELS), rows)

    async def set_tags(self, style_id: str, tags: Sequence[str]) -> None:
        """Replace a style's tags with these, in this order."""
        await self._session.execute(delete(_TAGS).where(_TAGS.c.style_id == style_id))
        if tags:
            rows = [{"style_id": style_id, "position": i, "tag": t} for i, t in enumerate(tags)]
            await self._session.execute(insert(_TAGS), rows)

    async def delete(self, style_id: str) -> None:
        """Delete a style; its models, tags, examples and places in collections go with it (cascades)."""
        await self._session.execute(delete(_STYLES).where(_STYLES.c.id == style_id))

    async def count_use(self, style_id: str) -> None:
        """Count one more request made with a style."""
        statement = update(_STYLES).where(_STYLES.c.id == style_id).values(use_count=_STYLES.c.use_count + 1)
        await self._session.execute(statement)

    async def is_sharedkey_bound(self, sharedkey_id: str) -> bool:
        """Whether some style pays with this shared key."""
        return bool((await self._session.execute(_STYLE_BOUND_TO_KEY, {"key": sharedkey_id})).scalar())

    async def sharedkey_hash(self, sharedkey_id: str) -> str | None:
        """The stored hash of a shared key, by its row id (to read it with its owner, as an API key would be)."""
        return cast(str | None, (await self._session.execute(_KEY_HASH, {"key": sharedkey_id})).scalar())

    # Examples -------------------------------------------------------------------------------------------------

    async def examples_of(self, style_ids: Collection[str]) -> dict[str, list[Example]]:
        """The example images of these styles, oldest first, by style id."""
        if not style_ids:
            return {}
        found: dict[str, list[Example]] = {}
        for row in await self._session.execute(_EXAMPLES_OF, {"styles": list(style_ids)}):
            found.setdefault(row.style_id, []).append(Example(**row._mapping))
        return found

    async def add_example(self, example: Example) -> None:
        """Insert an example image."""
        values = {f.name: getattr(example, f.name) for f in fields(Example)}
        await self._session.execute(insert(_EXAMPLES).values(values))

    async def change_example(self, example_id: str, url: str, is_primary: bool) -> None:
        """Set an example's URL and whether it is primary."""
        statement = update(_EXAMPLES).where(_EXAMPLES.c.id == example_id)
        await self._session.execute(statement.values(url=url, is_primary=is_primary))

    async def set_primary(self, style_id: str, example_id: str | None) -> None:
        """Make ``example_id`` the one primary example of a style (``None``: none of them)."""
        statement = update(_EXAMPLES).where(_EXAMPLES.c.style_id == style_id)
        await self._session.execute(statement.values(is_primary=_EXAMPLES.c.id == example_id))

    async def delete_example(self, example_id: str) -> None:
        """Delete an example image."""
        await self._session.execute(delete(_EXAMPLES).where(_EXAMPLES.c.id == example_id))

    # Collections ----------------------------------------------------------------------------------------------

    async def _collections(self, statement: Select[Any]) -> list[StyleCollection]:
        return [StyleCollection(**row._mapping) for row in await self._session.execute(statement)]

    async def get_collection(self, collection_id: str) -> StyleCollection | None:
        """The collection with this id."""
        found = await self._collections(select(*_COLLECTION_COLUMNS).where(_COLLECTIONS.c.id == collection_id))
        return found[0] if found else None

    async def collection_by_name(self, name: str, user_id: int | None = None) -> StyleCollection | None:
        """The oldest collection called ``name`` (exactly), of ``user_id`` if given."""
        statement = select(*_COLLECTION_COLUMNS).where(_COLLECTIONS.c.name == name)
        if user_id is not None:
            statement = statement.where(_COLLECTIONS.c.user_id == user_id)
        found = await self._collections(statement.order_by(_COLLECTIONS.c.created_at, _COLLECTIONS.c.id).limit(1))
        return found[0] if found else None

    async def public_collections(
        self, style_type: str | None, sort: str, offset: int, limit: int
    ) -> list[StyleCollection]:
        """One page of the public collections (of one type, if given), by use or age."""
        statement = select(*_COLLECTION_COLUMNS).where(_COLLECTIONS.c.public.is_(True))
        if style_type is not None:
            statement = statement.where(_COLLECTIONS.c.style_type == style_type)
        return await self._collections(_page(statement, _COLLECTIONS, sort, offset, limit))

    async def create_collection(self, collection: StyleCollection, style_ids: Sequence[str]) -> bool:
        """Insert a collection of these styles; ``False`` (nothing inserted) if its creator has one so named."""
        row = {name: getattr(collection, name) for name in _COLLECTION_FIELDS}
        if not await self._in_savepoint(insert(_COLLECTIONS).values(row)):
            return False
        await self.set_members(collection.id, style_ids)
        return True

    async def change_collection(self, collection_id: str, changes: dict[str, Any]) -> bool:
        """Change a collection's own columns; ``False`` (nothing changed) if a new name is taken by its creator."""
        return await self._in_savepoint(update(_COLLECTIONS).where(_COLLECTIONS.c.id == collection_id).values(changes))

    async def set_members(self, collection_id: str, style_ids: Sequence[str]) -> None:
        """Replace a collection's styles with these, in this order."""
        await self._session.execute(delete(_MEMBERS).where(_MEMBERS.c.collection_id == collection_id))
        if style_ids:
            rows = [{"collection_id": collection_id, "position": i, "style_id": s} for i, s in enumerate(style_ids)]
            await self._session.execute(insert(_MEMBERS), rows)

    async def members_of(self, collection_ids: Collection[str]) -> dict[str, list[Member]]:
        """The styles of these collections, in order, by collection id."""
        if not collection_ids:
            return {}
        found: dict[str, list[Member]] = {}
        for collection_id, style_id, name, user_id in await self._session.execute(
            _MEMBERS_OF, {"collections": list(collection_ids)}
        ):
            found.setdefault(collection_id, []).append(Member(style_id, name, user_id))
        return found

    async def delete_collection(self, collection_id: str) -> None:
        """Delete a collection (its styles stay)."""
        await self._session.execute(delete(_COLLECTIONS).where(_COLLECTIONS.c.id == collection_id))

    async def count_collection_use(self, collection_id: str) -> None:
        """Count one more request made with a collection."""
        column = _COLLECTIONS.c.use_count
        statement = update(_COLLECTIONS).where(_COLLECTIONS.c.id == collection_id).values(use_count=column + 1)
        await self._session.execute(statement)
