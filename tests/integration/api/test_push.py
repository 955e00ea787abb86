"""Push instead of poll: ``GET /generate/stream/{id}`` (server-sent events) and ``Prefer: wait`` on
``/generate/async``, through HTTP, with a scripted worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tests.live_server import Account, Horde
from tests.sse_client import EventReader

# Pushes come through LISTEN/NOTIFY on PostgreSQL and in-process on SQLite: both engines.
pytestmark = pytest.mark.both_databases

SMALL = {"width": 64, "height": 64, "steps": 5}
POLL_SECONDS = 30.0
"""Streams re-read their request this rarely here: everything a test sees within seconds came by push."""


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    return {"event_stream_poll_seconds": POLL_SECONDS}


async def queue(horde: Horde, account: Account, n: int = 1) -> str:
    response = await horde.generate(account, params={**SMALL, "n": n})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def stream_url(request_id: str) -> str:
    return f"/api/v2/generate/stream/{request_id}"


async def submit_fault(horde: Horde, owner: Account, job_id: str, reason: str) -> None:
    body = {
        "id": job_id,
        "state": "faulted",
        "gen_metadata": [{"type": "information", "value": "see_ref", "ref": reason}],
    }
    response = await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)
    assert response.status_code == 200, response.text


@pytest.mark.live  # reads the event stream while it is written
async def test_a_two_image_request_streams_queued_started_image_done_in_order(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester, n=2)
    async with EventReader(horde.client, stream_url(request_id)) as reader:
        assert reader.status_code == 200 and reader.content_type.startswith("text/event-stream")
        assert reader.response_headers["cache-control"] == "no-cache"
        queued = await reader.next_named()
        assert queued is not None and queued.name == "queued"
        assert queued.data["waiting"] == 2 and "queue_position" in queued.data and "wait_time" in queued.data
        seen: list[tuple[str, dict[str, Any]]] = []
        for _ in range(2):
            job = await horde.pop(owner)
            assert len(job["ids"]) == 1
            started = await reader.next_named(seconds=5)  # pushed: the stream's own poll is 30 s away
            assert started is not None and started.name == "started", started
            assert started.data["id"] == job["ids"][0] and started.data["worker_name"] == "worker-1"
            submitted = await horde.upload_and_submit(owner, job)
            assert submitted.status_code == 200, submitted.text
            image = await reader.next_named(seconds=5)
            assert image is not None and image.name == "image", image
            assert image.data["id"] == job["ids"][0] and image.data["img"].startswith("http")
            seen += [(started.name, started.data), (image.name, image.data)]
        rest = await reader.until_end(seconds=5)
    assert [e.name for e in rest] == ["done"]
    done = rest[0].data
    assert done["done"] and not done["faulted"] and done["finished"] == 2
    assert rest[0].id == "2-2"
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert [g["id"] for g in status["generations"]] == [data["id"] for name, data in seen if name == "image"]


async def test_a_stream_resumes_after_last_event_id(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester, n=2)
    jobs = [await horde.pop(owner) for _ in range(2)]
    for job in jobs:
        assert (await horde.upload_and_submit(owner, job)).status_code == 200
    async with EventReader(horde.client, stream_url(request_id)) as reader:
        whole = await reader.until_end()
    assert [e.name for e in whole] == ["queued", "started", "started", "image", "image", "done"]
    async with EventReader(horde.client, stream_url(request_id), headers={"Last-Event-ID": "2-1"}) as reader:
        resumed = await reader.until_end()
    assert [e.name for e in resumed] == ["image", "done"]
    assert resumed[0].data["id"] == whole[4].data["id"]


@pytest.mark.live  # reads the event stream while it is written
async def test_a_faulted_request_ends_its_stream_with_faulted_and_the_reason(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester)
    async with EventReader(horde.client, stream_url(request_id)) as reader:
        assert (await reader.next_named()).name == "queued"  # type: ignore[union-attr]
        for attempt in range(3):
            job = await horde.pop(owner)
            await submit_fault(horde, owner, job["ids"][0], f"out of memory #{attempt}")
        events = await reader.until_end(seconds=5)
    assert [e.name for e in events] == ["started"] * 3 + ["faulted"]
    assert events[-1].data["faulted"] and events[-1].data["fault_reason"].endswith("out of memory #2")


@pytest.mark.live  # reads the event stream while it is written
async def test_a_cancelled_request_ends_its_stream_with_done(horde: Horde) -> None:
    requester = await horde.register("asker", kudos=100)
    request_id = await queue(horde, requester)
    async with EventReader(horde.client, stream_url(request_id)) as reader:
        assert (await reader.next_named()).name == "queued"  # type: ignore[union-attr]
        cancelled = await horde.client.delete(f"/api/v2/generate/status/{request_id}")
        assert cancelled.status_code == 200, cancelled.text
        events = await reader.until_end(seconds=5)
    assert [e.name for e in events] == ["done"]
    assert events[0].data["done"] and not events[0].data["faulted"] and events[0].data["finished"] == 0


async def test_an_unknown_request_has_no_stream(horde: Horde) -> None:
    for request_id in (str(uuid.uuid4()), "not-a-request"):
        response = await horde.client.get(stream_url(request_id))
        assert response.status_code == 404
        assert response.json()["rc"] == "RequestNotFound"


async def _worker(horde: Horde, owner: Account, delay: float) -> None:
    """Pop until a job comes, wait ``delay`` seconds, then upload and submit it."""
    for _ in range(200):
        if (job := await horde.pop(owner))["ids"]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(delay)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200


async def test_prefer_wait_answers_the_finished_status_when_the_worker_is_quick(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=100), await horde.register("owner")
    worker = asyncio.create_task(_worker(horde, owner, delay=0.3))
    started = time.monotonic()
    response = await horde.client.post(
        "/api/v2/generate/async",
        json={"prompt": "a lighthouse", "params": SMALL},
        headers={**requester.headers, "Prefer": "wait=5"},
    )
    await worker
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=5"
    body = response.json()
    assert body["done"] and body["finished"] == 1 and len(body["generations"]) == 1
    assert body["generations"][0]["img"].startswith("http")
    assert time.monotonic() - started < 4  # woken by the submit, not by the 30 s poll


async def test_prefer_wait_answers_202_when_the_request_is_still_going(horde: Horde) -> None:
    requester = await horde.register("asker", kudos=100)
    started = time.monotonic()
    response = await horde.client.post(
        "/api/v2/generate/async",
        json={"prompt": "a lighthouse", "params": SMALL},
        headers={**requester.headers, "Prefer": "respond-async, wait=1"},
    )
    assert response.status_code == 202, response.text
    assert set(response.json()) >= {"id", "kudos"} and response.json()["kudos"] > 0
    assert 0.9 <= time.monotonic() - started < 10
    check = await horde.check(response.json()["id"])
    assert not check["done"] and check["waiting"] == 1
    plain = await horde.generate(requester, params=SMALL)  # without the header: no waiting
    assert plain.status_code == 202 and "Preference-Applied" not in plain.headers


def test_the_event_stream_is_in_the_openapi_document() -> None:
    from openhorde.api.app import create_app
    from openhorde.config import Settings

    spec = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    assert "/api/v2/generate/stream/{id}" in spec["paths"]
    parameters = spec["paths"]["/api/v2/generate/async"]["post"]["parameters"]
    assert any(p["name"] == "Prefer" and p["in"] == "header" for p in parameters)
