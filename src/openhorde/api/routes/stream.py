"""``GET /generate/stream/{id}``: a request's progress pushed as server-sent events (an OpenHorde extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from openhorde.api import push
from openhorde.api.deps import FollowerDep
from openhorde.api.schemas.errors import RequestError

router = APIRouter(prefix="/generate", tags=["generate"])

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]

EVENTS = """Events, each with JSON `data`:
`queued` (the `/generate/check` fields: `queue_position`, `wait_time`, ...), `position` (the same, when the
position or wait changed), `started` (a job handed to a worker: `id`, `worker_id`, `worker_name`, `model`),
`image` (an image finished, as in `/generate/status` `generations`), then one of `done` (finished or
cancelled) or `faulted` (with `fault_reason`), which closes the stream. A comment is sent every 15 s of
quiet. Each event's `id` may be sent back as `Last-Event-ID` to resume after it."""


@router.get(
    "/stream/{id}",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The request's events until it ends."},
        404: {"model": RequestError, "description": "No such request (RequestNotFound)."},
    },
    summary="Follow a request as server-sent events",
    description=EVENTS,
)
async def stream(id: str, follower: FollowerDep, last_event_id: LastEventId = None) -> Response:
    await follower.require(id)
    keepalive = follower.ctx.settings.push.event_stream_keepalive_seconds
    return push.event_stream(follower, id, last_event_id, keepalive)
