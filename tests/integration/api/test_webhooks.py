"""Webhooks through HTTP: a loopback receiver gets one signed POST per event, retried with backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from openhorde.domain.webhook_delivery import WebhookSender
from openhorde.storage.tables import WebhookDelivery
from tests.live_server import Account, Horde

SECRET = "receiver-shares-this-secret"
SMALL = {"width": 64, "height": 64, "steps": 5}


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    return {
        "webhook_secret": SECRET,
        "webhook_poll_interval_seconds": 0.02,
        "webhook_backoff_seconds": 0.01,
        "webhook_backoff_max_seconds": 0.05,
        "webhook_max_attempts": 3,
        "webhook_timeout_seconds": 2,
        "allow_private_addresses": True,  # the receiver listens on loopback
    }


@dataclass
class Post:
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A tiny HTTP server on loopback: answers each POST with the next status scripted for its event (then
    ``default``)."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    default: int = 200
    delay: float = 0.0
    posts: list[Post] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = (await reader.readexactly(int(headers.get("content-length", "0")))).decode()
        self.posts.append(Post(headers, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        script = self.statuses.get(json.loads(body).get("event"), [])
        status = script.pop(0) if script else self.default
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    def events(self) -> list[str]:
        return [json.loads(post.body)["event"] for post in self.posts]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


def verify(secret: str, headers: dict[str, str], body: str, tolerance: float = 300) -> bool:
    """The receiver's check, as the README documents it."""
    timestamp = headers["x-openhorde-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and hmac.compare_digest(expected, headers["x-openhorde-signature"])


async def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def deliveries(horde: Horde) -> list[WebhookDelivery]:
    async with horde.db.unit_of_work() as session:
        return list((await session.execute(select(WebhookDelivery))).scalars())


async def queue(horde: Horde, account: Account, url: str, n: int = 1) -> str:
    response = await horde.generate(account, params={**SMALL, "n": n}, webhook=url)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_one_signed_post_per_event(horde: Horde, receiver: Receiver) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester, receiver.url, n=2)
    job = await horde.pop(owner, amount=2)
    assert len(job["ids"]) == 2
    for index in range(2):
        assert (await horde.upload_and_submit(owner, job, index)).status_code == 200

    await wait_for(lambda: len(receiver.posts) >= 3)
    await asyncio.sleep(0.3)  # several more polls: nothing else may arrive
    assert sorted(receiver.events()) == ["done", "image", "image"]
    for post in receiver.posts:
        assert verify(SECRET, post.headers, post.body)
        assert not verify("another secret", post.headers, post.body)
        assert not verify(SECRET, post.headers, post.body.replace("request", "Request"))
        assert post.headers["content-type"] == "application/json"
        assert post.headers["x-openhorde-event"] == json.loads(post.body)["event"]
    assert len({post.headers["x-openhorde-delivery"] for post in receiver.posts}) == 3

    images = [json.loads(post.body) for post in receiver.posts if json.loads(post.body)["event"] == "image"]
    assert {image["id"] for image in images} == set(job["ids"])
    for image in images:
        assert image["request"] == request_id and image["worker_name"] == "worker-1"
        assert image["model"] == "stable_diffusion" and image["seed"] == "1" and image["censored"] is False
        assert image["kudos"] > 0 and image["gen_metadata"] == []
        download = await horde.client.get(image["img"])
        assert download.status_code == 200 and download.content[:4] == b"RIFF"
    done = next(json.loads(post.body) for post in receiver.posts if json.loads(post.body)["event"] == "done")
    assert done["request"] == request_id and done["state"] == "done" and done["finished"] == 2

    rows = await deliveries(horde)
    assert len(rows) == 3
    assert all(row.delivered_at and row.attempts == 1 and row.next_attempt_at is None for row in rows)
    assert {row.id for row in rows} == {post.headers["x-openhorde-delivery"] for post in receiver.posts}


async def test_a_request_without_webhook_writes_no_deliveries(horde: Horde) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    response = await horde.generate(requester, params=SMALL)
    assert response.status_code == 202
    assert (await horde.upload_and_submit(owner, await horde.pop(owner))).status_code == 200
    assert await deliveries(horde) == []


async def test_failing_receiver_gets_the_event_on_the_third_attempt(horde: Horde, receiver: Receiver) -> None:
    receiver.statuses = {"image": [500, 500]}
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    await queue(horde, requester, receiver.url)
    job = await horde.pop(owner)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200

    await wait_for(lambda: Counter(receiver.events())["image"] == 3 and "done" in receiver.events())
    await asyncio.sleep(0.2)
    image_posts = [post for post in receiver.posts if json.loads(post.body)["event"] == "image"]
    assert len(image_posts) == 3  # 500, 500, then 200: no fourth try
    assert len({post.headers["x-openhorde-delivery"] for post in image_posts}) == 1  # the same delivery
    assert len({post.body for post in image_posts}) == 1
    assert all(verify(SECRET, post.headers, post.body) for post in image_posts)
    image_row = next(row for row in await deliveries(horde) if row.event == "image")
    assert image_row.attempts == 3 and image_row.delivered_at is not None and image_row.failed_at is None


async def test_receiver_that_never_accepts_gets_max_attempts_then_the_row_fails(
    horde: Horde, receiver: Receiver
) -> None:
    receiver.default = 500
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    await queue(horde, requester, receiver.url)
    assert (await horde.upload_and_submit(owner, await horde.pop(owner))).status_code == 200

    await wait_for(lambda: len(receiver.posts) >= 6)  # image and done, 3 attempts each
    await asyncio.sleep(0.3)
    assert Counter(receiver.events()) == {"image": 3, "done": 3}
    rows = await deliveries(horde)
    assert len(rows) == 2
    for row in rows:
        assert row.attempts == 3 and row.failed_at is not None and row.delivered_at is None
        assert row.next_attempt_at is None and row.last_error is not None and "HTTP 500" in row.last_error


async def test_unreachable_receiver_records_the_connection_error(horde: Horde, receiver: Receiver) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    url = "http://127.0.0.1:9/nothing-listens-here"
    await queue(horde, requester, url)
    assert (await horde.upload_and_submit(owner, await horde.pop(owner))).status_code == 200

    async def all_failed() -> bool:
        rows = await deliveries(horde)
        return len(rows) == 2 and all(row.failed_at is not None for row in rows)

    deadline = time.monotonic() + 10
    while not await all_failed():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert all(row.attempts == 3 and "Connect" in (row.last_error or "") for row in await deliveries(horde))


async def test_a_faulted_request_sends_its_fault(horde: Horde, receiver: Receiver) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester, receiver.url)
    for attempt in range(3):
        job = await horde.pop(owner, name=f"worker-{attempt}")
        assert job["ids"], job
        body = {"id": job["ids"][0], "generation": "", "state": "faulted", "seed": 1}
        assert (await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)).status_code == 200
    assert (await horde.check(request_id))["faulted"]

    await wait_for(lambda: len(receiver.posts) >= 1)
    await asyncio.sleep(0.2)
    assert receiver.events() == ["faulted"]
    fault = json.loads(receiver.posts[0].body)
    assert fault["request"] == request_id and fault["state"] == "faulted" and "3 jobs" in fault["fault_reason"]


@pytest.mark.parametrize(
    ("url", "allowed", "accepted"),
    [
        ("http://127.0.0.1:{port}/api/v2/generate/async", "", False),
        ("http://localhost:{port}/x", "", False),
        ("http://127.0.0.1:1/hook", "example.com", False),
        ("https://hooks.example.com/x", "*.example.com", True),
        ("https://example.com/x", "example.com, other.org", True),
        ("https://evil.com/x", "example.com", False),
        ("http://127.0.0.1:1/hook", "", True),
    ],
)
async def test_webhook_urls_are_checked_when_the_request_is_made(
    horde: Horde, url: str, allowed: str, accepted: bool
) -> None:
    horde.ctx.settings.webhooks.webhook_allowed_hosts = allowed
    requester = await horde.register("req", kudos=100)
    response = await horde.generate(requester, params=SMALL, webhook=url.format(port=horde.settings.port))
    assert response.status_code == (202 if accepted else 400), response.text
    if not accepted:
        assert response.json()["rc"] == "ValidationError"


@pytest.mark.both_databases  # several senders claim the same rows
async def test_concurrent_delivery_loops_send_each_event_once(horde: Horde, receiver: Receiver) -> None:
    """The app's own loop and four more on the same database race for 60 events; each arrives once."""
    receiver.delay = 0.01
    now = time.time()
    async with horde.db.store() as store:
        for number in range(60):
            await store.webhooks.add(
                str(uuid.uuid4()),
                f"test-{number}",
                str(uuid.uuid4()),
                "image",
                receiver.url,
                json.dumps({"event": "image", "number": number}),
                now,
            )
    senders = [WebhookSender(horde.db, horde.ctx) for _ in range(4)]
    try:
        for _ in range(5):
            await asyncio.gather(*(sender.deliver_due() for sender in senders))
    finally:
        for sender in senders:
            await sender.close()
    await wait_for(lambda: len(receiver.posts) >= 60)
    await asyncio.sleep(0.2)
    received = Counter(post.headers["x-openhorde-delivery"] for post in receiver.posts)
    assert len(received) == 60 and set(received.values()) == {1}
    rows = await deliveries(horde)
    assert all(row.delivered_at is not None and row.attempts == 1 for row in rows)


async def test_an_event_is_recorded_once_under_its_key(horde: Horde) -> None:
    now = time.time()
    for _ in range(2):
        async with horde.db.store() as store:
            await store.webhooks.add(str(uuid.uuid4()), "job-1:image", "r", "image", "http://127.0.0.1:1/", "{}", now)
    assert len(await deliveries(horde)) == 1
