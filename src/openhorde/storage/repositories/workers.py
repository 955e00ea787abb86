"""The workers repository: workers as their check-ins, owners and moderators change them, and their abort counts.

A worker is read as a frozen ``WorkerInfo``; the hot part of a pop does not read it at all (each process keeps
its checked-in workers in memory, ``domain/worker_cache.py``), so these statements run on a check-in that
writes (a changed declaration, or once per debounce interval), on the ``/workers`` pages and on changes.

Names are unique regardless of case (the unique index on ``lower(name)``): creating or renaming a worker runs
in a savepoint, so a name taken meanwhile by another transaction comes back as ``None``/``False`` and leaves
the caller's transaction usable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Float, Integer, Row, Table, bindparam, case, delete, func, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import InterrogationForm, Job, Worker, WorkerModel

_WORKERS = cast(Table, Worker.__table__)
_WORKER_MODELS = cast(Table, WorkerModel.__table__)
_JOBS = cast(Table, Job.__table__)
_FORMS = cast(Table, InterrogationForm.__table__)


@dataclass(frozen=True, slots=True)
class WorkerCapabilities:
    """What a worker declares it can do, on every pop: one type from the pop's body to the worker's row, its
    cached state and the matching query (the defaults are the AI Horde's for a field a pop leaves out)."""

    models: tuple[str, ...] = ()
    nsfw: bool = False
    max_pixels: int = 512 * 512
    threads: int = 1
    bridge_agent: str = "unknown:0:unknown"
    blacklist: tuple[str, ...] = ()
    priority_user_ids: tuple[int, ...] = ()
    require_upfront_kudos: bool = False
    extra_slow_worker: bool = False
    limit_max_steps: bool = False
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_post_processing: bool = True
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    allow_hypernetworks: bool = False
    """Hypernetworks (``params.hypernetworks``, an OpenHorde extension): only such workers get those requests."""
    allow_unsafe_ipaddr: bool = True
    can_censor_nsfw: bool = True
    post_processors: tuple[str, ...] = ()
    """The post-processors an image worker says it has (an OpenHorde extension of the pop); empty: not said."""
    forms: tuple[str, ...] = ()
    """An alchemist's forms (``caption``, ``nsfw``, a post-processor...); empty for an image worker."""
    max_tiles: int = 16
    """The largest image, in 512×512 tiles, an alchemist post-processes."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as the domain sees it: what it declared at its last written check-in, its state and its figures."""

    id: str
    user_id: int
    name: str
    info: str | None
    created_at: float
    last_check_in_at: float
    ipaddr: str | None
    capabilities: WorkerCapabilities
    capabilities_hash: str
    maintenance: bool
    maintenance_msg: str | None
    paused: bool
    kudos_generated_cents: int
    kudos_uptime_cents: int
    fulfilments: int
    megapixelsteps: float
    aborted_jobs: int
    uncompleted_jobs: int
    aborts_in_window: int
    abort_window_started_at: float
    uptime_seconds: float
    speed_pps: float | None
    """Pixel-steps per second; for an alchemist, forms per second."""
    team_id: str | None
    worker_type: str = "image"
    """``image`` or ``interrogation`` (an alchemist); fixed when the worker is created."""


CAPABILITY_FIELDS = tuple(field.name for field in fields(WorkerCapabilities))


def _columns_of(field_name: str) -> tuple[str, ...]:
    """The ``workers`` columns a ``WorkerInfo`` field is read from (its capabilities: one column each)."""
    return CAPABILITY_FIELDS if field_name == "capabilities" else (field_name,)


WORKER_FIELDS = tuple(name for field in fields(WorkerInfo) for name in _columns_of(field.name))
"""The columns a ``WorkerInfo`` is read from."""
CHANGEABLE_FIELDS = frozenset({"maintenance", "maintenance_msg", "paused", "info", "team_id"})
"""What ``change`` may set: an owner's or a moderator's changes (``PUT /workers/{id}``)."""
_LISTS = frozenset({"blacklist", "priority_user_ids", "models", "forms", "post_processors"})
_COLUMNS = [_WORKERS.c[name] for name in WORKER_FIELDS]


def _worker(row: Row[Any] | None) -> WorkerInfo | None:
    if row is None:
        return None
    values = dict(row._mapping)
    for name in _LISTS:
        values[name] = tuple(values[name] or ())
    capabilities = WorkerCapabilities(**{name: values.pop(name) for name in CAPABILITY_FIELDS})
    return WorkerInfo(capabilities=capabilities, **values)


def _workers(rows: Iterable[Row[Any]]) -> list[WorkerInfo]:
    return [cast(WorkerInfo, _worker(row)) for row in rows]


_BY_ID = select(*_COLUMNS).where(_WORKERS.c.id == bindparam("worker_id"))
_BY_NAME = select(*_COLUMNS).where(_WORKERS.c.name == bindparam("name"))
# Matches the unique index on lower(name) (ix_workers_name_lower), so the lookup is an index probe.
_BY_NAME_ANY_CASE = select(*_COLUMNS).where(func.lower(_WORKERS.c.name) == func.lower(bindparam("name")))
_ALL = select(*_COLUMNS).order_by(_WORKERS.c.name)
_ALL_OF_TYPE = select(*_COLUMNS).where(_WORKERS.c.worker_type == bindparam("worker_type")).order_by(_WORKERS.c.name)
_IDS_OF = select(_WORKERS.c.id).where(_WORKERS.c.user_id == bindparam("user_id"))
_MODELS_OF = select(_WORKER_MODELS.c.worker_id, _WORKER_MODELS.c.model).where(
    _WORKER_MODELS.c.worker_id.in_(bindparam("worker_ids", expanding=True))
)
_CREATE = (
    insert(_WORKERS)
    .values(
        id=bindparam("new_id"),
        user_id=bindparam("owner"),
        name=bindparam("new_name"),
        worker_type=bindparam("new_type"),
        created_at=bindparam("now"),
        last_check_in_at=bindparam("now"),
    )
    .returning(*_COLUMNS)
)
_CHECKED_IN = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"))
    .values(last_check_in_at=bindparam("at"), uptime_seconds=bindparam("uptime"))
)
# A key named like a column would join the SET of an UPDATE: the capabilities are bound as ``v_<column>``.
_DECLARED = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"))
    .values(
        last_check_in_at=bindparam("at"),
        uptime_seconds=bindparam("uptime"),
        **{
            name: bindparam(f"v_{name}", type_=_WORKERS.c[name].type)
            for name in (*CAPABILITY_FIELDS, "ipaddr", "capabilities_hash")
        },
    )
)
_FORGET_MODELS = delete(_WORKER_MODELS).where(_WORKER_MODELS.c.worker_id == bindparam("worker_id"))
_ADD_MODEL = insert(_WORKER_MODELS).values(worker_id=bindparam("of_worker"), model=bindparam("a_model"))
_UPTIME_REWARD = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"))
    .values(kudos_uptime_cents=_WORKERS.c.kudos_uptime_cents + bindparam("cents"))
)
_RENAME = update(_WORKERS).where(_WORKERS.c.id == bindparam("worker_id")).values(name=bindparam("new_name"))
_JOB_IN_PROGRESS = (
    select(_JOBS.c.id)
    .where(_JOBS.c.worker_id == bindparam("worker_id"), _JOBS.c.state == literal_column("'processing'"))
    .limit(1)
)
_FORM_IN_PROGRESS = (
    select(_FORMS.c.id)
    .where(_FORMS.c.worker_id == bindparam("worker_id"), _FORMS.c.state == literal_column("'processing'"))
    .limit(1)
)
_DELETE = delete(_WORKERS).where(_WORKERS.c.id == bindparam("worker_id"))
_in_window = _WORKERS.c.abort_window_started_at > bindparam("since", type_=Float)
_COUNT_ABORTS = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"))
    .values(
        aborted_jobs=_WORKERS.c.aborted_jobs + bindparam("aborts", type_=Integer),
        uncompleted_jobs=_WORKERS.c.uncompleted_jobs + bindparam("aborts", type_=Integer),
        aborts_in_window=case(
            (_in_window, _WORKERS.c.aborts_in_window + bindparam("aborts", type_=Integer)),
            else_=bindparam("aborts", type_=Integer),
        ),
        abort_window_started_at=case(
            (_in_window, _WORKERS.c.abort_window_started_at), else_=bindparam("now", type_=Float)
        ),
    )
)
_ABORTING = (
    select(_WORKERS.c.id, _WORKERS.c.aborts_in_window)
    .where(
        _WORKERS.c.id.in_(bindparam("worker_ids", expanding=True)),
        _WORKERS.c.maintenance.is_(False),
        _WORKERS.c.aborts_in_window > bindparam("limit"),
        _in_window,
    )
    .order_by(_WORKERS.c.id)
)
_ENTER_MAINTENANCE = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"), _WORKERS.c.maintenance.is_(False))
    .values(maintenance=True, maintenance_msg=bindparam("message"), aborts_in_window=0)
)


@lru_cache(maxsize=32)
def _change_statement(names: tuple[str, ...]) -> Any:
    """Set these columns (bound as ``v_<column>``) of one worker."""
    values = {name: bindparam(f"v_{name}", type_=_WORKERS.c[name].type) for name in names}
    return update(_WORKERS).where(_WORKERS.c.id == bindparam("worker_id")).values(**values)


class WorkerRepository:
    """Every statement about ``workers`` and ``worker_models`` except the matching rules (``matching_queries``)
    and a delivery's figures (``deliveries``)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """The worker with this id."""
        return _worker((await self._session.execute(_BY_ID, {"worker_id": worker_id})).first())

    async def by_name(self, name: str) -> WorkerInfo | None:
        """The worker with exactly this name."""
        return _worker((await self._session.execute(_BY_NAME, {"name": name})).first())

    async def by_name_any_case(self, name: str) -> WorkerInfo | None:
        """The worker whose name equals ``name`` regardless of case (at most one: the index keeps them unique)."""
        return _worker((await self._session.execute(_BY_NAME_ANY_CASE, {"name": name})).first())

    async def every(self, worker_type: str | None = None) -> list[WorkerInfo]:
        """Every worker (of ``worker_type``, if given), by name."""
        if worker_type is None:
            return _workers(await self._session.execute(_ALL))
        return _workers(await self._session.execute(_ALL_OF_TYPE, {"worker_type": worker_type}))

    async def ids_of(self, user_id: int) -> list[str]:
        """The ids of the workers a user owns."""
        return list((await self._session.execute(_IDS_OF, {"user_id": user_id})).scalars())

    async def models_of(self, worker_ids: Iterable[str]) -> dict[str, list[str]]:
        """The models each of these workers serves (``worker_models``), by worker id; every id is a key."""
        wanted = list(dict.fromkeys(worker_ids))
        models: dict[str, list[str]] = {worker_id: [] for worker_id in wanted}
        if wanted:
            for worker_id, model in await self._session.execute(_MODELS_OF, {"worker_ids": wanted}):
                models[worker_id].append(model)
        return models

    async def create(
        self, worker_id: str, user_id: int, name: str, now: float, worker_type: str = "image"
    ) -> WorkerInfo | None:
        """Insert a worker of ``worker_type`` (its declarations at their defaults) in a savepoint; ``None`` (and
        nothing inserted) if its name is already taken, in any case."""
        values = {"new_id": worker_id, "owner": user_id, "new_name": name, "now": now, "new_type": worker_type}
        try:
            async with self._session.begin_nested():
                row = (await self._session.execute(_CREATE, values)).one()
        except IntegrityError:
            return None
        return _worker(row)

    async def record_check_in(self, worker_id: str, at: float, uptime_seconds: float) -> None:
        """Write a check-in that declared nothing new: its time and the worker's uptime."""
        await self._session.execute(_CHECKED_IN, {"worker_id": worker_id, "at": at, "uptime": uptime_seconds})

    async def declare(
        self,
        worker_id: str,
        at: float,
        uptime_seconds: float,
        capabilities: WorkerCapabilities,
        ipaddr: str | None,
        digest: str,
    ) -> None:
        """Write a check-in with new declarations (``digest``: theirs): the row, then its models (``worker_models``)."""
        values: dict[str, Any] = {"worker_id": worker_id, "at": at, "uptime": uptime_seconds}
        values.update(v_ipaddr=ipaddr, v_capabilities_hash=digest)
        for name in CAPABILITY_FIELDS:
            value = getattr(capabilities, name)
            values[f"v_{name}"] = list(value) if name in _LISTS else value
        await self._session.execute(_DECLARED, values)
        await self._session.execute(_FORGET_MODELS, {"worker_id": worker_id})
        if capabilities.models:
            rows = [{"of_worker": worker_id, "a_model": model} for model in capabilities.models]
            await self._session.execute(_ADD_MODEL, rows)

    async def add_uptime_reward(self, worker_id: str, cents: int) -> None:
        """Add an uptime reward (hundredths of a kudo) to the worker's figures."""
        await self._session.execute(_UPTIME_REWARD, {"worker_id": worker_id, "cents": cents})

    async def change(self, worker_id: str, **changes: Any) -> None:
        """Set some of a worker's fields (``CHANGEABLE_FIELDS``)."""
        unknown = changes.keys() - CHANGEABLE_FIELDS
        assert not unknown, f"not changeable worker fields: {unknown}"
        if not changes:
            return
        names = tuple(sorted(changes))
        values = {"worker_id": worker_id, **{f"v_{name}": changes[name] for name in names}}
        await self._session.execute(_change_statement(names), values)

    async def rename(self, worker_id: str, name: str) -> bool:
        """Rename a worker in a savepoint; ``False`` (and the savepoint undone) if the name is taken, in any case."""
        try:
            async with self._session.begin_nested():
                await self._session.execute(_RENAME, {"worker_id": worker_id, "new_name": name})
        except IntegrityError:
            return False
        return True

    async def has_jobs_in_progress(self, worker_id: str) -> bool:
        """Whether the worker holds a job (or, an alchemist, a form) that is still processing."""
        values = {"worker_id": worker_id}
        if (await self._session.execute(_JOB_IN_PROGRESS, values)).first() is not None:
            return True
        return (await self._session.execute(_FORM_IN_PROGRESS, values)).first() is not None

    async def delete(self, worker_id: str) -> None:
        """Delete a worker and its models; its jobs keep their worker's name (their ``worker_id`` becomes NULL)."""
        await self._session.execute(_FORGET_MODELS, {"worker_id": worker_id})
        await self._session.execute(_DELETE, {"worker_id": worker_id})

    async def count_aborts(self, aborts: Mapping[str, int], now: float, window_seconds: float) -> None:
        """Add aborted jobs (``aborts``: how many, by worker id) to each worker's record and to its count in its
        current window of ``window_seconds`` (a window that began longer ago starts afresh at ``now``)."""
        if not aborts:
            return
        since = now - window_seconds
        rows = [{"worker_id": w, "aborts": aborts[w], "now": now, "since": since} for w in sorted(aborts)]
        await self._session.execute(_COUNT_ABORTS, rows)

    async def aborting(
        self, worker_ids: Iterable[str], limit: int, now: float, window_seconds: float
    ) -> list[tuple[str, int]]:
        """``(id, aborts)`` of those of these workers, not in maintenance, that aborted more than ``limit`` jobs in
        their current window of ``window_seconds``."""
        wanted = sorted(set(worker_ids))
        if not wanted:
            return []
        values = {"worker_ids": wanted, "limit": limit, "since": now - window_seconds}
        return [(str(w), int(n)) for w, n in await self._session.execute(_ABORTING, values)]

    async def enter_maintenance(self, worker_id: str, message: str) -> None:
        """Put a worker into maintenance with ``message`` and start its abort count afresh (unless it is in
        maintenance already)."""
        await self._session.execute(_ENTER_MAINTENANCE, {"worker_id": worker_id, "message": message})
