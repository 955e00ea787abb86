"""Push instead of poll on the wire: a request's server-sent events, and ``Prefer: wait`` on ``/generate/async``.

Both wait on the request events of ``domain.queue.events``; the broker behind them starts with the app.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from openhorde.api.request_bodies import check_body, generation_body, status_body
from openhorde.api.schemas.generate import RequestAsync
from openhorde.config import Settings
from openhorde.domain.queue.events import RequestFollower, StreamEvent
from openhorde.errors import HordeError

RETRY_MILLISECONDS = 2000
"""How long an ``EventSource`` waits before reconnecting (the ``retry:`` field)."""
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d{1,9})\"?", re.IGNORECASE)


def start_push(app: FastAPI, settings: Settings) -> None:
    """The request follower behind event streams and ``Prefer: wait``, on the app's event broker."""
    app.state.follower = RequestFollower(
        app.state.db, app.state.context, app.state.queue_view, app.state.broker, settings.push.event_stream_poll_seconds
    )


def event_data(event: StreamEvent) -> dict[str, object]:
    """The JSON ``data`` of an event: the ``/generate/check`` fields, a job, or an image as in ``/status``."""
    if event.image is not None:
        return generation_body(event.image).model_dump(mode="json", exclude_none=True)
    if event.job is not None:
        job = event.job
        return {"id": job.job_id, "worker_id": job.worker_id, "worker_name": job.worker_name, "model": job.model}
    if event.status is not None:
        return check_body(event.status)
    return {"done": False, "faulted": True, "fault_reason": event.reason}


def render(event: StreamEvent) -> str:
    """One event in the ``text/event-stream`` format."""
    return f"id: {event.id}\nevent: {event.name}\ndata: {json.dumps(event_data(event), separators=(',', ':'))}\n\n"


async def sse(
    follower: RequestFollower, request_id: str, last_event_id: str | None, keepalive: float
) -> AsyncIterator[str]:
    """The stream's text: a ``retry:`` hint, the events, and a comment whenever ``keepalive`` seconds were quiet."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    last_write = time.monotonic()
    async for event in follower.events(request_id, last_event_id):
        if event is not None:
            yield render(event)
            last_write = time.monotonic()
        elif time.monotonic() - last_write >= keepalive:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` that stops as soon as the client goes away (whatever the ASGI version)."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        closing = getattr(self.body_iterator, "aclose", None)
        if closing is not None:  # unsubscribe now, not when the generator is collected
            await closing()


def event_stream(follower: RequestFollower, request_id: str, last_event_id: str | None, keepalive: float) -> Response:
    """The response of ``GET /generate/stream/{id}``."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStreamResponse(sse(follower, request_id, last_event_id, keepalive), headers=headers)


def requested_wait(prefer: str | None, max_seconds: int) -> int | None:
    """Seconds of a ``Prefer: wait=N`` header, cut to ``max_seconds``; ``None`` when absent, 0 or turned off."""
    match = _WAIT.search(prefer or "")
    if match is None or max_seconds <= 0 or int(match.group(1)) <= 0:
        return None
    return min(int(match.group(1)), max_seconds)


class WaitedResponse(Response):
    """``Prefer: wait=N``: after the request's creation is committed, wait up to N seconds for it to end; then
    answer its ``/generate/status`` body (200), or the usual 202 when it is still going."""

    def __init__(self, follower: RequestFollower, accepted: RequestAsync, seconds: int) -> None:
        super().__init__(status_code=202)
        self.follower, self.accepted, self.seconds = follower, accepted, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"Preference-Applied": f"wait={self.seconds}"}
        try:
            finished = await self.follower.wait_finished(self.accepted.id, self.seconds)
        except HordeError:  # removed meanwhile: the client learns that from /status, as without the header
            finished = None
        if finished is None:
            body = self.accepted.model_dump(mode="json", exclude_none=True)
            response = JSONResponse(body, status_code=202, headers=headers)
        else:
            response = JSONResponse(status_body(finished).model_dump(mode="json"), status_code=200, headers=headers)
        await response(scope, receive, send)
