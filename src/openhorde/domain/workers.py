"""Workers: check-in on pop, listing, and owner or moderator changes."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import audit, catalogue, teams, worker_economy
from openhorde.domain.accounts import is_anonymous, parse_display_name
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.names import clean_name
from openhorde.errors import (
    AnonForbidden,
    BadRequest,
    Locked,
    NameAlreadyExists,
    NotModerator,
    NotOwner,
    NoValidActions,
    UnsupportedModel,
    WorkerNotFound,
    WrongCredentials,
)
from openhorde.storage import worker_queries
from openhorde.storage.tables import User, Worker, WorkerModel

MAX_WORKER_MODELS = 300
MAX_BLACKLIST_WORDS = 200
BLACKLIST_WORD_LENGTH = 15
WORKER_NAME_MAX_LENGTH = 100
WORKER_RENAME_MIN_LENGTH = 5
"""A new name given with ``PUT /workers/{id}`` has at least this many characters (the reference's minimum)."""


@dataclass
class CheckIn:
    """What a worker declares about itself on every pop."""

    name: str
    models: list[str] = field(default_factory=list)
    nsfw: bool = False
    max_pixels: int = 512 * 512
    threads: int = 1
    bridge_agent: str = "unknown:0:unknown"
    blacklist: list[str] = field(default_factory=list)
    priority_usernames: list[str] = field(default_factory=list)
    require_upfront_kudos: bool = False
    extra_slow_worker: bool = False
    limit_max_steps: bool = False
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_post_processing: bool = True
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    allow_unsafe_ipaddr: bool = True
    can_censor_nsfw: bool = True
    ipaddr: str | None = None


def _capabilities_hash(check_in: CheckIn) -> str:
    """A digest of everything a worker declares; an unchanged digest means nothing to rewrite."""
    fields = asdict(check_in)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


async def _valid_models(session: AsyncSession, ctx: HordeContext, user: User, requested: list[str]) -> list[str]:
    names = list(dict.fromkeys(m for m in requested if m))[:MAX_WORKER_MODELS] or [catalogue.DEFAULT_MODEL]
    if ctx.settings.allow_custom_models or user.is_customizer:
        return names
    known = await catalogue.known_names(session, names)
    valid = [m for m in names if m in known]
    if not valid:
        raise UnsupportedModel(
            f"None of the models {names} is in the catalogue; ask the admin to add them or allow custom models."
        )
    return valid


def _priority_ids(usernames: list[str]) -> list[int]:
    ids = []
    for name in usernames:
        user_id = parse_display_name(name)
        if user_id is None:
            raise BadRequest(f"Priority username '{name}' is not of the form name#id.", rc="InvalidPriorityUsername")
        ids.append(user_id)
    return sorted(set(ids))


_INVALID_NAME = "InvalidWorkerName"
_WORKER_BY_NAME = select(Worker).where(Worker.name == bindparam("name"))


async def get_worker_by_name(session: AsyncSession, name: str) -> Worker | None:
    """The worker with this exact name, if any."""
    return await session.scalar(_WORKER_BY_NAME, {"name": name})


async def check_in(
    session: AsyncSession, ctx: HordeContext, user: User, check_in: CheckIn, now: float | None = None
) -> tuple[Worker, list[str]]:
    """Find or create the popping worker and record its capabilities; returns it and its models.

    The row is rewritten only when the declared capabilities changed or the last write is
    older than the check-in debounce, so an idle worker polling often costs one read.
    """
    moment = now or time.time()
    if is_anonymous(user):
        raise AnonForbidden("Anonymous users cannot run workers; register for an API key.", rc="AnonForbiddenWorker")
    name = clean_name(check_in.name, what="worker name", minimum=1, maximum=WORKER_NAME_MAX_LENGTH, rc=_INVALID_NAME)
    check_in.blacklist = [w[:BLACKLIST_WORD_LENGTH] for w in check_in.blacklist if w.strip()][:MAX_BLACKLIST_WORDS]
    worker = await worker_queries.worker_by_name_any_case(session, name)
    if worker is None:
        await horde_modes.check_new_worker(session, ctx, user)  # invite-only mode
        worker = await _create_worker(session, user, name, moment)
    _check_is_this_worker(worker, user, name)
    digest = _capabilities_hash(check_in)
    uptime_before = worker.uptime_seconds
    if worker.capabilities_hash == digest:
        if moment - worker.last_check_in_at >= ctx.settings.check_in_debounce_seconds:
            _record_check_in(worker, moment, ctx.settings.worker_stale_seconds)
        # Uptime rewards and automatic maintenance are decided here, per pop (see worker_economy).
        await worker_economy.after_check_in(session, ctx.settings, worker, user, uptime_before, moment)
        return worker, list(worker.models)
    models = await _valid_models(session, ctx, user, check_in.models)
    priority_ids = _priority_ids(check_in.priority_usernames)
    _record_check_in(worker, moment, ctx.settings.worker_stale_seconds)
    _apply_capabilities(worker, check_in, models, priority_ids, digest)
    await session.flush()
    await session.execute(delete(WorkerModel).where(WorkerModel.worker_id == worker.id))
    await session.execute(insert(WorkerModel), [{"worker_id": worker.id, "model": m} for m in models])
    await worker_economy.after_check_in(session, ctx.settings, worker, user, uptime_before, moment)
    return worker, models


async def _create_worker(session: AsyncSession, user: User, name: str, now: float) -> Worker:
    """Insert a new worker named ``name``, or return the row a concurrent first pop of that name just inserted.

    A bridge's threads often pop at once when it starts; the loser of the race on the unique
    name gets the winner's row (and the ownership check) instead of an integrity error.
    """
    worker = Worker(id=str(uuid.uuid4()), user_id=user.id, name=name, created_at=now, last_check_in_at=now)
    if await worker_queries.insert_unless_name_taken(session, worker):
        return worker
    existing = await worker_queries.worker_by_name_any_case(session, name)
    if existing is None:
        raise WorkerNotFound(f"Worker '{name}' vanished while being created; try again.")
    return existing


def _check_is_this_worker(worker: Worker, user: User, name: str) -> None:
    """Refuse a pop whose name is another worker's: one of another account, or one differing only in case.

    Names are unique regardless of case (the database enforces it), so "alice-gpu" can neither be created beside
    "Alice-GPU" nor silently become it: only the exact name finds the worker.
    """
    if worker.name != name:
        raise _name_taken(worker.name)
    if worker.user_id != user.id:
        raise WrongCredentials(f"The worker name '{name}' belongs to another account.")


def _name_taken(existing: str) -> NameAlreadyExists:
    return NameAlreadyExists(
        f"A worker named '{existing}' exists already; worker names are unique regardless of case.",
        rc="WorkerNameAlreadyExists",
    )


def _record_check_in(worker: Worker, now: float, stale_seconds: int) -> None:
    """Count the time since the last check-in as uptime, unless the worker was offline or in maintenance."""
    elapsed = now - worker.last_check_in_at
    if elapsed < stale_seconds and not worker.maintenance:
        worker.uptime_seconds += elapsed
    worker.last_check_in_at = now


def _apply_capabilities(
    worker: Worker, check_in: CheckIn, models: list[str], priority_ids: list[int], digest: str
) -> None:
    worker.models = models
    worker.nsfw = check_in.nsfw
    worker.max_pixels = check_in.max_pixels
    worker.threads = check_in.threads
    worker.bridge_agent = check_in.bridge_agent
    worker.blacklist = check_in.blacklist
    worker.priority_user_ids = priority_ids
    worker.require_upfront_kudos = check_in.require_upfront_kudos
    worker.extra_slow_worker = check_in.extra_slow_worker
    worker.limit_max_steps = check_in.limit_max_steps
    worker.allow_img2img = check_in.allow_img2img
    worker.allow_painting = check_in.allow_painting
    worker.allow_post_processing = check_in.allow_post_processing
    worker.allow_controlnet = check_in.allow_controlnet
    worker.allow_sdxl_controlnet = check_in.allow_sdxl_controlnet
    worker.allow_lora = check_in.allow_lora
    worker.allow_unsafe_ipaddr = check_in.allow_unsafe_ipaddr
    worker.can_censor_nsfw = check_in.can_censor_nsfw
    worker.ipaddr = check_in.ipaddr
    worker.capabilities_hash = digest


@dataclass(frozen=True)
class WorkerView:
    """A worker with what its public details need besides its row."""

    worker: Worker
    owner: User
    models: list[str]
    online: bool
    team_name: str | None = None


async def get_worker(session: AsyncSession, worker_id: str) -> Worker:
    """The worker with this id; ``WorkerNotFound`` otherwise."""
    worker = await session.get(Worker, worker_id)
    if worker is None:
        raise WorkerNotFound(f"Worker with ID '{worker_id}' not found.")
    return worker


async def views(session: AsyncSession, workers: list[Worker], stale_seconds: int, now: float) -> list[WorkerView]:
    """Details of several workers in a few queries (their models, their owners, their teams)."""
    ids = [w.id for w in workers]
    models: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for worker_id, model in await session.execute(
            select(WorkerModel.worker_id, WorkerModel.model).where(WorkerModel.worker_id.in_(ids))
        ):
            models[worker_id].append(model)
    owner_ids = {w.user_id for w in workers}
    owners = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(owner_ids)))} if owner_ids else {}
    team_names = await teams.team_names(session, {w.team_id for w in workers if w.team_id})
    return [
        WorkerView(
            worker=w,
            owner=owners[w.user_id],
            models=sorted(models[w.id]),
            online=now - w.last_check_in_at < stale_seconds,
            team_name=team_names.get(w.team_id) if w.team_id else None,
        )
        for w in workers
    ]


async def list_workers(session: AsyncSession, name: str | None = None) -> list[Worker]:
    """Every worker (or the one with ``name``), by name."""
    query = select(Worker).order_by(Worker.name)
    if name:
        query = query.where(Worker.name == name)
    return list(await session.scalars(query))


async def worker_ids_of(session: AsyncSession, user_id: int) -> list[str]:
    """The ids of the workers a user owns."""
    return list(await session.scalars(select(Worker.id).where(Worker.user_id == user_id)))


@dataclass
class WorkerChanges:
    """Fields an owner (or a moderator, for ``paused``) may change with ``PUT /workers/{id}``."""

    maintenance: bool | None = None
    maintenance_msg: str | None = None
    paused: bool | None = None
    info: str | None = None
    name: str | None = None
    team: str | None = None
    """A team id to join, or "" to leave the worker's team."""


def _check_may_change(worker: Worker, user: User, changes: WorkerChanges) -> None:
    is_mod = user.is_moderator or user.is_admin
    if changes.paused is not None and not is_mod:
        raise NotModerator("Only moderators can pause workers.")
    if worker.user_id != user.id and not is_mod:
        raise NotOwner("Only the worker's owner or a moderator can change it.")


async def update_worker(session: AsyncSession, worker: Worker, user: User, changes: WorkerChanges) -> dict[str, object]:
    """Apply an owner's or moderator's changes; return the changed fields."""
    _check_may_change(worker, user, changes)
    changed: dict[str, object] = {}
    if changes.maintenance is not None:
        worker.maintenance = changes.maintenance
        worker.maintenance_msg = changes.maintenance_msg if changes.maintenance else None
        changed["maintenance"] = changes.maintenance
    if changes.paused is not None:
        worker.paused = changes.paused
        changed["paused"] = changes.paused
    if changes.info is not None:
        worker.info = changes.info
        changed["info"] = changes.info
    if changes.name is not None:
        changed["name"] = await _rename(session, worker, changes.name)
    if changes.team is not None:
        changed["team"] = await teams.assign_worker(session, worker, changes.team)
    if not changed:
        raise NoValidActions("No worker modification selected!", rc="NoWorkerModSelected")
    if worker.user_id != user.id:
        await audit.record(session, user, "worker.modify", "worker", worker.id, dict(changed))
    await session.flush()
    return changed


async def _rename(session: AsyncSession, worker: Worker, new_name: str) -> str:
    """Give ``worker`` a new name, unique regardless of case (its own name in another case is fine)."""
    name = clean_name(
        new_name, what="worker name", minimum=WORKER_RENAME_MIN_LENGTH, maximum=WORKER_NAME_MAX_LENGTH, rc=_INVALID_NAME
    )
    existing = await worker_queries.worker_by_name_any_case(session, name)
    if existing is not None and existing is not worker:
        raise _name_taken(existing.name)
    # The lookup cannot see a rename racing in from another request; the unique index on lower(name) can.
    if not await worker_queries.rename_unless_name_taken(session, worker, name):
        raise _name_taken(name)
    return name


async def delete_worker(session: AsyncSession, worker: Worker, user: User) -> None:
    """Remove a worker (its owner or a moderator); its finished jobs keep their worker's name."""
    if worker.user_id != user.id and not (user.is_moderator or user.is_admin):
        raise NotOwner("Only the worker's owner or a moderator can delete it.")
    if await worker_queries.has_jobs_in_progress(session, worker.id):
        raise Locked("This worker has jobs in progress; delete it once they are submitted or expired.")
    if worker.user_id != user.id:
        await audit.record(session, user, "worker.delete", "worker", worker.id, {"name": worker.name})
    await session.execute(delete(WorkerModel).where(WorkerModel.worker_id == worker.id))
    await session.delete(worker)
    await session.flush()
