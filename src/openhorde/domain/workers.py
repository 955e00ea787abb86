"""Workers: check-in on pop, listing, and owner or moderator changes."""

from __future__ import annotations

import functools
import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, replace

from openhorde.domain import audit, catalogue, teams, worker_economy
from openhorde.domain.accounts import Account, is_anonymous, parse_display_name
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.names import clean_name
from openhorde.domain.worker_cache import WorkerState, changed
from openhorde.errors import (
    AnonForbiddenWorker,
    InvalidPriorityUsername,
    InvalidWorkerName,
    Locked,
    NotModerator,
    NotOwner,
    NoWorkerModSelected,
    PolymorphicNameConflict,
    UnsupportedModel,
    WorkerNameAlreadyExists,
    WorkerNotFound,
    WrongCredentials,
)
from openhorde.storage.repositories.workers import WorkerCapabilities as WorkerCapabilities  # the domain's too
from openhorde.storage.repositories.workers import WorkerInfo as WorkerInfo  # the domain's name for it too
from openhorde.storage.store import Store

MAX_WORKER_MODELS = 300
MAX_BLACKLIST_WORDS = 200
BLACKLIST_WORD_LENGTH = 15
WORKER_NAME_MAX_LENGTH = 100
WORKER_RENAME_MIN_LENGTH = 5
"""A new name given with ``PUT /workers/{id}`` has at least this many characters (the reference's minimum)."""
IMAGE_WORKER = "image"
ALCHEMIST = "interrogation"
"""The worker types: what ``/workers`` calls them (``type``), fixed by the endpoint of a worker's first pop. The
AI Horde's third, ``text``, does not exist here: a ``/workers?type=text`` finds none."""


@dataclass(frozen=True, slots=True)
class CheckIn:
    """A pop's check-in: the worker's name, what it declares it can do, and the address it pops from."""

    name: str
    capabilities: WorkerCapabilities = field(default_factory=WorkerCapabilities)
    ipaddr: str | None = None
    worker_type: str = IMAGE_WORKER
    """Which pop it came from: ``/generate/pop`` (image) or ``/interrogate/pop`` (interrogation)."""


def _capabilities_hash(check_in: CheckIn) -> str:
    """A digest of everything a worker declares; an unchanged digest means nothing to rewrite."""
    return _declared_digest(check_in.ipaddr, check_in.worker_type, check_in.capabilities)


@functools.lru_cache(maxsize=4096)
def _declared_digest(ipaddr: str | None, worker_type: str, capabilities: WorkerCapabilities) -> str:
    # Kept per process: a worker declares the same thing on every pop, and serialising and hashing its whole
    # declaration (up to 300 models) was a third of a pop's CPU. The digest itself stays a stable sha256, since
    # it is stored on the worker's row and compared by every server process.
    declared = {"ipaddr": ipaddr, "type": worker_type, **asdict(capabilities)}
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()


async def _valid_models(store: Store, ctx: HordeContext, user: Account, requested: tuple[str, ...]) -> tuple[str, ...]:
    names = list(dict.fromkeys(m for m in requested if m))[:MAX_WORKER_MODELS] or [catalogue.DEFAULT_MODEL]
    if ctx.settings.queue.allow_custom_models or user.is_customizer:
        return tuple(names)
    known = await catalogue.known_names(store, names, ctx.catalogue)
    valid = tuple(m for m in names if m in known)
    if not valid:
        raise UnsupportedModel(
            f"None of the models {names} is in the catalogue; ask the admin to add them or allow custom models."
        )
    return valid


def priority_ids(usernames: list[str]) -> tuple[int, ...]:
    """The user ids of a worker's priority usernames ("name#id"), each once, in order."""
    ids = []
    for name in usernames:
        user_id = parse_display_name(name)
        if user_id is None:
            raise InvalidPriorityUsername(f"Priority username '{name}' is not of the form name#id.")
        ids.append(user_id)
    return tuple(sorted(set(ids)))


def _tidy_blacklist(words: tuple[str, ...]) -> tuple[str, ...]:
    """A worker's blacklist as it is kept: no blank words, each cut to its maximum length, at most so many."""
    return tuple(w[:BLACKLIST_WORD_LENGTH] for w in words if w.strip())[:MAX_BLACKLIST_WORDS]


async def get_worker_by_name(store: Store, name: str) -> WorkerInfo | None:
    """The worker with this exact name, if any."""
    return await store.workers.by_name(name)


def _state_of(worker: WorkerInfo) -> WorkerState:
    return WorkerState(
        id=worker.id,
        user_id=worker.user_id,
        name=worker.name,
        digest=worker.capabilities_hash or "",
        written_at=worker.last_check_in_at,
        capabilities=worker.capabilities,
        paused=worker.paused,
        maintenance=worker.maintenance,
        maintenance_msg=worker.maintenance_msg,
        speed_pps=worker.speed_pps,
        worker_type=worker.worker_type,
    )


async def check_in(
    store: Store, ctx: HordeContext, user: Account, check_in: CheckIn, now: float | None = None
) -> WorkerState:
    """Find or create the popping worker and record its capabilities.

    The row is rewritten only when the declared capabilities changed or the last write is older than the
    check-in debounce; in between, a process answers from its ``WorkerCache`` without reading it.
    """
    moment = now or time.time()
    if is_anonymous(user):
        raise AnonForbiddenWorker("Anonymous users cannot run workers; register for an API key.")
    name = clean_name(
        check_in.name, what="worker name", minimum=1, maximum=WORKER_NAME_MAX_LENGTH, error=InvalidWorkerName
    )
    if check_in.capabilities.blacklist:
        blacklist = _tidy_blacklist(check_in.capabilities.blacklist)
        check_in = replace(check_in, capabilities=replace(check_in.capabilities, blacklist=blacklist))
    digest = _capabilities_hash(check_in)
    cached = ctx.workers.get(name)
    debounce = ctx.settings.queue.check_in_debounce_seconds
    if (
        cached is not None
        and cached.worker_type == check_in.worker_type
        and _still_fresh(cached, user, digest, moment, debounce)
    ):
        return cached
    state = await _check_in_row(store, ctx, user, name, check_in, digest, moment)
    # Remembered only once the row is committed: a concurrent pop answered from the cache before that would hand
    # out jobs of a worker that does not exist yet for its transaction (or never will, if this one rolls back).
    store.after_commit(lambda: ctx.workers.put(state))
    return state


def _still_fresh(cached: WorkerState, user: Account, digest: str, now: float, debounce: float) -> bool:
    """Whether a cached worker answers this check-in: same owner, same capabilities, row written recently."""
    return cached.user_id == user.id and cached.digest == digest and now - cached.written_at < debounce


async def _check_in_row(
    store: Store, ctx: HordeContext, user: Account, name: str, check_in: CheckIn, digest: str, moment: float
) -> WorkerState:
    """The database side of a check-in: create the worker or record what changed, and pay its uptime reward."""
    settings = ctx.settings
    worker = await store.workers.by_name_any_case(name)
    if worker is None:
        await horde_modes.check_new_worker(store, ctx, user)  # invite-only mode
        worker = await _create_worker(store, user, name, moment, check_in.worker_type)
    _check_is_this_worker(worker, user, name, check_in.worker_type)
    uptime_before = worker.uptime_seconds
    if worker.capabilities_hash == digest:
        if moment - worker.last_check_in_at >= settings.queue.check_in_debounce_seconds:
            worker = _checked_in(worker, moment, settings.queue.worker_stale_seconds)
            await store.workers.record_check_in(worker.id, worker.last_check_in_at, worker.uptime_seconds)
        # Uptime rewards and automatic maintenance are decided here, per written check-in (see worker_economy).
        await worker_economy.after_check_in(store, settings, worker, user, uptime_before, moment)
        return _state_of(worker)
    # An alchemist serves forms, not models: it has none, so the image matching never considers it.
    models = (
        await _valid_models(store, ctx, user, check_in.capabilities.models)
        if worker.worker_type == IMAGE_WORKER
        else ()
    )
    capabilities = replace(check_in.capabilities, models=models)
    worker = _checked_in(worker, moment, settings.queue.worker_stale_seconds)
    await store.workers.declare(
        worker.id, worker.last_check_in_at, worker.uptime_seconds, capabilities, check_in.ipaddr, digest
    )
    worker = replace(worker, capabilities=capabilities, ipaddr=check_in.ipaddr, capabilities_hash=digest)
    await worker_economy.after_check_in(store, settings, worker, user, uptime_before, moment)
    return _state_of(worker)


async def _create_worker(store: Store, user: Account, name: str, now: float, worker_type: str) -> WorkerInfo:
    """Insert a new worker named ``name``, or return the row a concurrent first pop of that name just inserted.

    A bridge's threads often pop at once when it starts; the loser of the race on the unique
    name gets the winner's row (and the ownership check) instead of an integrity error.
    """
    created = await store.workers.create(str(uuid.uuid4()), user.id, name, now, worker_type)
    if created is not None:
        return created
    existing = await store.workers.by_name_any_case(name)
    if existing is None:
        raise WorkerNotFound(f"Worker '{name}' vanished while being created; try again.")
    return existing


def _check_is_this_worker(worker: WorkerInfo, user: Account, name: str, worker_type: str) -> None:
    """Refuse a pop whose name is another worker's: one of another account, one differing only in case, or one
    of the other type (an alchemist's name popping for images, or the other way round).

    Names are unique regardless of case (the database enforces it), so "alice-gpu" can neither be created beside
    "Alice-GPU" nor silently become it: only the exact name finds the worker.
    """
    if worker.name != name:
        raise _name_taken(worker.name)
    if worker.user_id != user.id:
        raise WrongCredentials(f"The worker name '{name}' belongs to another account.")
    if worker.worker_type != worker_type:
        raise PolymorphicNameConflict(
            f"The worker name '{name}' belongs to a worker of type {worker.worker_type}; "
            f"a {worker_type} worker needs a name of its own."
        )


def _name_taken(existing: str) -> WorkerNameAlreadyExists:
    return WorkerNameAlreadyExists(
        f"A worker named '{existing}' exists already; worker names are unique regardless of case."
    )


def _checked_in(worker: WorkerInfo, now: float, stale_seconds: int) -> WorkerInfo:
    """The worker checked in at ``now``: the time since its last check-in counts as uptime, unless it was
    offline or in maintenance."""
    elapsed = now - worker.last_check_in_at
    uptime = worker.uptime_seconds
    if elapsed < stale_seconds and not worker.maintenance:
        uptime += elapsed
    return replace(worker, last_check_in_at=now, uptime_seconds=uptime)


@dataclass(frozen=True)
class WorkerView:
    """A worker with what its public details need besides its row."""

    worker: WorkerInfo
    owner: Account
    models: list[str]
    online: bool
    team_name: str | None = None

    @property
    def forms(self) -> list[str]:
        """The forms an alchemist offers (none for an image worker)."""
        return list(self.worker.capabilities.forms)


async def get_worker(store: Store, worker_id: str) -> WorkerInfo:
    """The worker with this id; ``WorkerNotFound`` otherwise."""
    worker = await store.workers.get(worker_id)
    if worker is None:
        raise WorkerNotFound(f"Worker with ID '{worker_id}' not found.")
    return worker


async def views(store: Store, workers: list[WorkerInfo], stale_seconds: int, now: float) -> list[WorkerView]:
    """Details of several workers in a few queries (their models, their owners, their teams)."""
    models = await store.workers.models_of(w.id for w in workers)
    owners = await store.accounts.many({w.user_id for w in workers})
    team_names = await teams.team_names(store, {w.team_id for w in workers if w.team_id})
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


async def list_workers(store: Store, name: str | None = None, worker_type: str | None = None) -> list[WorkerInfo]:
    """Every worker (or the one with ``name``) of ``worker_type`` (any when ``None``), by name."""
    if name:
        found = await store.workers.by_name(name)
        return [found] if found is not None and worker_type in (None, found.worker_type) else []
    return await store.workers.every(worker_type)


async def worker_ids_of(store: Store, user_id: int) -> list[str]:
    """The ids of the workers a user owns."""
    return await store.workers.ids_of(user_id)


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


def _check_may_change(worker: WorkerInfo, user: Account, changes: WorkerChanges) -> None:
    is_mod = user.is_moderator or user.is_admin
    if changes.paused is not None and not is_mod:
        raise NotModerator("Only moderators can pause workers.")
    if worker.user_id != user.id and not is_mod:
        raise NotOwner("Only the worker's owner or a moderator can change it.")


async def update_worker(store: Store, worker: WorkerInfo, user: Account, changes: WorkerChanges) -> dict[str, object]:
    """Apply an owner's or moderator's changes; return the changed fields."""
    _check_may_change(worker, user, changes)
    applied: dict[str, object] = {}
    fields_set: dict[str, object] = {}
    if changes.maintenance is not None:
        fields_set["maintenance"] = changes.maintenance
        fields_set["maintenance_msg"] = changes.maintenance_msg if changes.maintenance else None
        applied["maintenance"] = changes.maintenance
    if changes.paused is not None:
        fields_set["paused"] = applied["paused"] = changes.paused
    if changes.info is not None:
        fields_set["info"] = applied["info"] = changes.info
    if changes.name is not None:
        applied["name"] = await _rename(store, worker, changes.name)
    if changes.team is not None:
        applied["team"] = await teams.assign_worker(store, worker, changes.team)
    if not applied:
        raise NoWorkerModSelected("No worker modification selected!")
    await store.workers.change(worker.id, **fields_set)
    if worker.user_id != user.id:
        await audit.record(store, user, "worker.modify", "worker", worker.id, dict(applied))
    changed(store, worker.id)
    return applied


async def _rename(store: Store, worker: WorkerInfo, new_name: str) -> str:
    """Give ``worker`` a new name, unique regardless of case (its own name in another case is fine)."""
    name = clean_name(
        new_name,
        what="worker name",
        minimum=WORKER_RENAME_MIN_LENGTH,
        maximum=WORKER_NAME_MAX_LENGTH,
        error=InvalidWorkerName,
    )
    existing = await store.workers.by_name_any_case(name)
    if existing is not None and existing.id != worker.id:
        raise _name_taken(existing.name)
    # The lookup cannot see a rename racing in from another request; the unique index on lower(name) can.
    if not await store.workers.rename(worker.id, name):
        raise _name_taken(name)
    return name


async def delete_worker(store: Store, worker: WorkerInfo, user: Account) -> None:
    """Remove a worker (its owner or a moderator); its finished jobs keep their worker's name."""
    if worker.user_id != user.id and not (user.is_moderator or user.is_admin):
        raise NotOwner("Only the worker's owner or a moderator can delete it.")
    if await store.workers.has_jobs_in_progress(worker.id):
        raise Locked("This worker has jobs in progress; delete it once they are submitted or expired.")
    if worker.user_id != user.id:
        await audit.record(store, user, "worker.delete", "worker", worker.id, {"name": worker.name})
    await store.workers.delete(worker.id)
    changed(store, worker.id)
