"""The moderation repository: the horde modes row, the regex prompt filters and the messages to workers.

* The modes row (one row, id 1) is read whole by ``modes``, a hot path's read behind a short per-process cache
  (``domain/moderation/cache.py``). ``change_modes`` and ``bump_filters_version`` are one upsert each: they
  create the row with every mode off when it is missing, and lock it while they change it.
* A filter is read with the name of whoever last changed it (one join), so a list is one statement.
* A message is read with its worker's owner, whom the domain checks permissions against.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import HordeModes, PromptFilter, User, Worker, WorkerMessage
from openhorde.storage.tables.moderation import HORDE_MODES_ROW_ID

_MODES = cast(Table, HordeModes.__table__)
_FILTERS = cast(Table, PromptFilter.__table__)
_MESSAGES = cast(Table, WorkerMessage.__table__)
_WORKERS = cast(Table, Worker.__table__)
_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class Modes:
    """The horde modes and the prompt filters' version, as one read of the modes row gives them."""

    maintenance: bool = False
    invite_only: bool = False
    raid: bool = False
    filters_version: int = 0


@dataclass(frozen=True, slots=True)
class PromptFilterEntry:
    """A moderator's regex filter, with the name of whoever last changed it."""

    id: str
    regex: str
    filter_type: int
    description: str | None
    replacement: str
    user_id: int | None
    """Who last changed it; ``None`` once that account is gone."""
    updated_at: float
    username: str | None
    """The ``username`` of ``user_id``."""

    @property
    def author(self) -> str:
        """Who last changed it, as ``name#id`` (the AI Horde's form), or ``"unknown"``."""
        if self.user_id is None or self.username is None:
            return "unknown"
        return f"{self.username}#{self.user_id}"


@dataclass(frozen=True, slots=True)
class WorkerMessageEntry:
    """A message to a worker, with the worker's owner."""

    id: str
    worker_id: str
    user_id: int
    """The owner of the worker."""
    message: str
    origin: str
    created_at: float
    expires_at: float


# --- modes -------------------------------------------------------------------------------------------------------

_MODE_NAMES = ("maintenance", "invite_only", "raid")
_MODES_COLUMNS = [_MODES.c[field.name] for field in fields(Modes)]
_READ_MODES = select(*_MODES_COLUMNS).where(_MODES.c.id == HORDE_MODES_ROW_ID)


def _upsert(dialect: Any, values: dict[str, Any], on_conflict: dict[str, Any]) -> Any:
    """``INSERT`` of the modes row, or ``UPDATE`` of it when it exists, returning the modes."""
    statement = dialect.insert(_MODES).values(id=HORDE_MODES_ROW_ID, **values)
    return statement.on_conflict_do_update(index_elements=[_MODES.c.id], set_=on_conflict).returning(*_MODES_COLUMNS)


def _change_modes(dialect: Any) -> Any:
    # Bound as ``set_<mode>`` (a bind named like a column would join the SET); NULL keeps the mode as it is.
    given = {name: bindparam(f"set_{name}", type_=Boolean) for name in _MODE_NAMES}
    return _upsert(
        dialect,
        {
            **{name: func.coalesce(given[name], False) for name in _MODE_NAMES},
            "filters_version": 0,
            "updated_at": bindparam("at"),
        },
        {**{name: func.coalesce(given[name], _MODES.c[name]) for name in _MODE_NAMES}, "updated_at": bindparam("at")},
    )


def _bump_filters_version(dialect: Any) -> Any:
    return _upsert(
        dialect,
        {**dict.fromkeys(_MODE_NAMES, False), "filters_version": 1, "updated_at": bindparam("at")},
        {"filters_version": _MODES.c.filters_version + 1, "updated_at": bindparam("at")},
    )


_CHANGE_MODES = {True: _change_modes(sqlite), False: _change_modes(postgresql)}
_BUMP_FILTERS_VERSION = {True: _bump_filters_version(sqlite), False: _bump_filters_version(postgresql)}

# --- prompt filters ----------------------------------------------------------------------------------------------

_FILTER_COLUMNS = [_FILTERS.c[field.name] for field in fields(PromptFilterEntry) if field.name != "username"]
_FILTERS_WITH_AUTHOR = select(*_FILTER_COLUMNS, _USERS.c.username).select_from(
    _FILTERS.outerjoin(_USERS, _USERS.c.id == _FILTERS.c.user_id)
)
_ALL_FILTERS = _FILTERS_WITH_AUTHOR.order_by(_FILTERS.c.updated_at, _FILTERS.c.id)
_FILTER = _FILTERS_WITH_AUTHOR.where(_FILTERS.c.id == bindparam("filter_id"))
_INSERT_FILTER = insert(_FILTERS).values(
    id=bindparam("filter_id"),
    regex=bindparam("new_regex"),
    filter_type=bindparam("new_type"),
    description=bindparam("new_description"),
    replacement=bindparam("new_replacement"),
    user_id=bindparam("editor"),
    updated_at=bindparam("at"),
)
# NULL keeps a field as it is, so two moderators changing different fields at once both keep their change.
_CHANGE_FILTER = (
    update(_FILTERS)
    .where(_FILTERS.c.id == bindparam("filter_id"))
    .values(
        regex=func.coalesce(bindparam("new_regex", type_=Text), _FILTERS.c.regex),
        filter_type=func.coalesce(bindparam("new_type", type_=Integer), _FILTERS.c.filter_type),
        description=func.coalesce(bindparam("new_description", type_=Text), _FILTERS.c.description),
        replacement=func.coalesce(bindparam("new_replacement", type_=Text), _FILTERS.c.replacement),
        user_id=bindparam("editor"),
        updated_at=bindparam("at"),
    )
)
_DELETE_FILTER = delete(_FILTERS).where(_FILTERS.c.id == bindparam("filter_id")).returning(_FILTERS.c.regex)


@lru_cache(maxsize=4)
def _find_filters(by_type: bool, by_word: bool) -> Select[Any]:
    query = _FILTERS_WITH_AUTHOR.order_by(_FILTERS.c.filter_type, _FILTERS.c.updated_at, _FILTERS.c.id)
    if by_type:
        query = query.where(_FILTERS.c.filter_type == bindparam("filter_type"))
    if by_word:
        pattern: BindParameter[str] = bindparam("pattern")
        query = query.where(
            func.lower(_FILTERS.c.regex).like(pattern) | func.lower(_FILTERS.c.description).like(pattern)
        )
    return query


def _filter(row: Any) -> PromptFilterEntry:
    return PromptFilterEntry(**row._mapping)


# --- worker messages ---------------------------------------------------------------------------------------------

_MESSAGE_COLUMNS = (
    _MESSAGES.c.id,
    _MESSAGES.c.worker_id,
    _WORKERS.c.user_id,
    _MESSAGES.c.message,
    _MESSAGES.c.origin,
    _MESSAGES.c.created_at,
    _MESSAGES.c.expires_at,
)
_MESSAGES_WITH_OWNER = select(*_MESSAGE_COLUMNS).select_from(
    _MESSAGES.join(_WORKERS, _WORKERS.c.id == _MESSAGES.c.worker_id)
)
_MESSAGE = _MESSAGES_WITH_OWNER.where(_MESSAGES.c.id == bindparam("message_id"))
# Walks ix_worker_messages_worker_id_expires_at.
_ACTIVE_FOR_WORKER = _MESSAGES_WITH_OWNER.where(
    _MESSAGES.c.worker_id == bindparam("of_worker"), _MESSAGES.c.expires_at > bindparam("now")
).order_by(_MESSAGES.c.created_at, _MESSAGES.c.id)
_INSERT_MESSAGE = insert(_MESSAGES).values(
    id=bindparam("message_id"),
    worker_id=bindparam("of_worker"),
    sender_id=bindparam("sender"),
    message=bindparam("text"),
    origin=bindparam("source"),
    created_at=bindparam("at"),
    expires_at=bindparam("until"),
)
_DELETE_MESSAGE = delete(_MESSAGES).where(_MESSAGES.c.id == bindparam("message_id"))
_WORKER_OWNER = select(_WORKERS.c.user_id).where(_WORKERS.c.id == bindparam("of_worker"))
_WORKER_COUNT = select(func.count()).select_from(_WORKERS).where(_WORKERS.c.user_id == bindparam("owner"))
_VALIDITIES = ("active", "expired", "all")


@lru_cache(maxsize=len(_VALIDITIES) * 4)
def _find_messages(by_owner: bool, by_worker: bool, validity: str) -> Select[Any]:
    query = _MESSAGES_WITH_OWNER
    if by_owner:
        query = query.where(_WORKERS.c.user_id == bindparam("owner"))
    if by_worker:
        query = query.where(_MESSAGES.c.worker_id == bindparam("of_worker"))
    if validity == "active":
        query = query.where(_MESSAGES.c.expires_at > bindparam("now"))
    elif validity == "expired":
        query = query.where(_MESSAGES.c.expires_at <= bindparam("now"))
    order = (_MESSAGES.c.created_at.desc(), _MESSAGES.c.id)
    return query.order_by(*order).offset(bindparam("skip")).limit(bindparam("take"))


def _message(row: Any) -> WorkerMessageEntry:
    return WorkerMessageEntry(**row._mapping)


class ModerationRepository:
    """Every statement about the horde modes, the prompt filters and the messages to workers."""

    __slots__ = ("_session", "_sqlite")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._sqlite = is_sqlite

    # modes

    async def modes(self) -> Modes:
        """The horde modes (every mode off when the row was never written)."""
        row = (await self._session.execute(_READ_MODES)).first()
        return Modes() if row is None else Modes(**row._mapping)

    async def change_modes(
        self, maintenance: bool | None, invite_only: bool | None, raid: bool | None, now: float
    ) -> Modes:
        """Set the modes given (``None`` leaves one as it is); the modes after."""
        values = {"set_maintenance": maintenance, "set_invite_only": invite_only, "set_raid": raid, "at": now}
        row = (await self._session.execute(_CHANGE_MODES[self._sqlite], values)).one()
        return Modes(**row._mapping)

    async def bump_filters_version(self, now: float) -> None:
        """Tell every process its compiled filters are stale."""
        await self._session.execute(_BUMP_FILTERS_VERSION[self._sqlite], {"at": now})

    # prompt filters

    async def all_filters(self) -> list[PromptFilterEntry]:
        """Every filter, oldest change first (the order replacements apply in)."""
        return [_filter(row) for row in await self._session.execute(_ALL_FILTERS)]

    async def find_filters(self, filter_type: int | None, contains: str | None) -> list[PromptFilterEntry]:
        """Filters of one type and/or whose regex or description contains a word, by type then oldest change."""
        values: dict[str, Any] = {"filter_type": filter_type}
        if contains:
            values["pattern"] = f"%{contains.lower()}%"
        statement = _find_filters(filter_type is not None, bool(contains))
        return [_filter(row) for row in await self._session.execute(statement, values)]

    async def filter(self, filter_id: str) -> PromptFilterEntry | None:
        """One filter."""
        row = (await self._session.execute(_FILTER, {"filter_id": filter_id})).first()
        return None if row is None else _filter(row)

    async def add_filter(self, entry: PromptFilterEntry) -> None:
        """Insert a new filter (its ``username`` is not stored: it is read from ``user_id``)."""
        await self._session.execute(
            _INSERT_FILTER,
            {
                "filter_id": entry.id,
                "new_regex": entry.regex,
                "new_type": entry.filter_type,
                "new_description": entry.description,
                "new_replacement": entry.replacement,
                "editor": entry.user_id,
                "at": entry.updated_at,
            },
        )

    async def change_filter(
        self,
        filter_id: str,
        editor_id: int,
        now: float,
        regex: str | None = None,
        filter_type: int | None = None,
        description: str | None = None,
        replacement: str | None = None,
    ) -> None:
        """Set the fields given (``None`` leaves one as it is) and who changed the filter when."""
        values = {
            "filter_id": filter_id,
            "new_regex": regex,
            "new_type": filter_type,
            "new_description": description,
            "new_replacement": replacement,
            "editor": editor_id,
            "at": now,
        }
        await self._session.execute(_CHANGE_FILTER, values)

    async def delete_filter(self, filter_id: str) -> str | None:
        """Remove a filter; its regex, or ``None`` if there was no such filter."""
        return (await self._session.execute(_DELETE_FILTER, {"filter_id": filter_id})).scalar()

    # worker messages

    async def worker_owner(self, worker_id: str) -> int | None:
        """The owner of a worker, or ``None`` if there is no such worker."""
        return (await self._session.execute(_WORKER_OWNER, {"of_worker": worker_id})).scalar()

    async def worker_count(self, user_id: int) -> int:
        """How many workers an account has."""
        return int((await self._session.execute(_WORKER_COUNT, {"owner": user_id})).scalar_one())

    async def add_message(self, entry: WorkerMessageEntry, sender_id: int) -> None:
        """Insert a message to a worker (``entry.user_id``, the worker's owner, is not stored)."""
        values = {
            "message_id": entry.id,
            "of_worker": entry.worker_id,
            "sender": sender_id,
            "text": entry.message,
            "source": entry.origin,
            "at": entry.created_at,
            "until": entry.expires_at,
        }
        await self._session.execute(_INSERT_MESSAGE, values)

    async def message(self, message_id: str) -> WorkerMessageEntry | None:
        """One message, with its worker's owner."""
        row = (await self._session.execute(_MESSAGE, {"message_id": message_id})).first()
        return None if row is None else _message(row)

    async def delete_message(self, message_id: str) -> None:
        """Remove a message."""
        await self._session.execute(_DELETE_MESSAGE, {"message_id": message_id})

    async def active_messages_for_worker(self, worker_id: str, now: float) -> list[WorkerMessageEntry]:
        """Unexpired messages to a worker, oldest first."""
        rows = await self._session.execute(_ACTIVE_FOR_WORKER, {"of_worker": worker_id, "now": now})
        return [_message(row) for row in rows]

    async def find_messages(
        self,
        owner_id: int | None,
        worker_id: str | None,
        validity: str,
        now: float,
        offset: int,
        limit: int,
    ) -> list[WorkerMessageEntry]:
        """Messages, newest first, filtered by the workers' owner, the worker and validity (active, expired, all)."""
        if validity not in _VALIDITIES:
            validity = "all"
        statement = _find_messages(owner_id is not None, worker_id is not None, validity)
        values = {"owner": owner_id, "of_worker": worker_id, "now": now, "skip": offset, "take": limit}
        return [_message(row) for row in await self._session.execute(statement, values)]
