"""Messages to workers (``/workers/messages``): shown in every pop's ``messages`` until they expire.

A worker's owner may message their own workers; moderators may message any worker and set the ``origin``
(others' messages carry the sender's ``name#id``). Moderators' messages and deletions are audit-logged.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from openhorde.domain import audit, worker_cache
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation.modes import is_moderator
from openhorde.errors import MessagesOnlyOwnWorkers, WorkerMessageNotFound, WorkerNotFound
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.moderation import WorkerMessageEntry
from openhorde.storage.store import Store

MAX_EXPIRY_HOURS = 720
DEFAULT_EXPIRY_HOURS = 12
PAGE_SIZE = 50


MessageView = WorkerMessageEntry
"""A message as the API shows it, with its worker's owner."""


def _may_manage(actor: Account, owner_id: int) -> bool:
    return is_moderator(actor) or actor.id == owner_id


async def send(
    store: Store,
    actor: Account,
    worker_id: str,
    message: str,
    expiry_hours: int = DEFAULT_EXPIRY_HOURS,
    origin: str | None = None,
    now: float | None = None,
) -> MessageView:
    """Leave a message for a worker (its owner or a moderator)."""
    moment = now or time.time()
    owner_id = await store.moderation.worker_owner(worker_id)
    if owner_id is None:
        raise WorkerNotFound(f"Worker with ID '{worker_id}' not found.")
    if not _may_manage(actor, owner_id):
        raise MessagesOnlyOwnWorkers("You can only send messages to your own workers.")
    view = MessageView(
        id=str(uuid.uuid4()),
        worker_id=worker_id,
        user_id=owner_id,
        message=message,
        origin=(origin if origin and is_moderator(actor) else actor.display_name)[:100],
        created_at=moment,
        expires_at=moment + min(expiry_hours, MAX_EXPIRY_HOURS) * 3600,
    )
    await store.moderation.add_message(view, actor.id)
    if is_moderator(actor):
        details = {"worker_id": worker_id, "message": message, "expiry_hours": expiry_hours}
        await audit.record(store, actor, "worker_message.send", "worker_message", view.id, details, now=moment)
    worker_cache.changed(store, worker_id)  # its next pop, in any process, shows the message
    return view


async def list_messages(
    store: Store,
    actor: Account,
    user_id: int | None = None,
    worker_id: str | None = None,
    validity: str = "active",
    page: int = 1,
    now: float | None = None,
) -> list[MessageView]:
    """A page of messages: moderators see all, others only those to their own workers."""
    owner = user_id if is_moderator(actor) else actor.id
    if not is_moderator(actor) and user_id is not None and user_id != actor.id:
        raise MessagesOnlyOwnWorkers("You can only see messages to your own workers.")
    offset = (page - 1) * PAGE_SIZE
    return await store.moderation.find_messages(owner, worker_id, validity, now or time.time(), offset, PAGE_SIZE)


async def get_message(store: Store, actor: Account, message_id: str) -> MessageView:
    """One message (its worker's owner or a moderator)."""
    view = await store.moderation.message(message_id)
    if view is None or not _may_manage(actor, view.user_id):
        raise WorkerMessageNotFound(f"Worker message with ID '{message_id}' not found.")
    return view


async def delete_message(store: Store, actor: Account, message_id: str, now: float | None = None) -> None:
    """Withdraw a message (its worker's owner or a moderator)."""
    view = await get_message(store, actor, message_id)
    if is_moderator(actor) and actor.id != view.user_id:
        details = {"worker_id": view.worker_id, "message": view.message}
        await audit.record(store, actor, "worker_message.delete", "worker_message", view.id, details, now=now)
    await store.moderation.delete_message(view.id)
    worker_cache.changed(store, view.worker_id)


async def for_pop(store: Store, ctx: HordeContext, worker_id: str, now: float | None = None) -> list[MessageView]:
    """The unexpired messages a popping worker is shown: read once, then kept with the worker in this process's
    ``WorkerCache`` until a message to it is sent or withdrawn (which announces the worker as changed)."""
    moment = now or time.time()
    cached = ctx.workers.messages.get(worker_id)
    if cached is None:
        cached = tuple(await store.moderation.active_messages_for_worker(worker_id, moment))
        ctx.workers.messages[worker_id] = cached
    return [m for m in cast(tuple[MessageView, ...], cached) if m.expires_at > moment]
