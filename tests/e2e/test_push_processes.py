"""Request events cross server processes: two `openhorde serve` on one PostgreSQL; a client follows a request
on one while a scripted worker pops and submits through the other (PostgreSQL NOTIFY, or Redis pub/sub)."""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import Callable

import httpx
import pytest
from PIL import Image
from tests.e2e.conftest import LiveServer
from tests.sse_client import EventReader

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]  # several server processes share one PostgreSQL

POLL_SECONDS = "30"
"""The servers' streams re-read their requests this rarely: what arrives within seconds was pushed."""


def _webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="WEBP")
    return buffer.getvalue()


async def _work_one(client: httpx.AsyncClient, api: str, apikey: str) -> list[str]:
    """Pop one job on ``api``, upload its image and submit it there; its job ids."""
    pop = {"name": "remote-worker", "models": ["stable_diffusion"]}
    for _ in range(100):
        job = (await client.post(f"{api}v2/generate/pop", headers={"apikey": apikey}, json=pop)).json()
        if job["ids"]:
            break
        await asyncio.sleep(0.1)
    assert (await client.put(job["r2_upload"], content=_webp())).status_code == 200
    body = {"id": job["id"], "generation": "R2", "seed": 1}
    answer = await client.post(f"{api}v2/generate/submit", headers={"apikey": apikey}, json=body)
    assert answer.status_code == 200, answer.text
    return list(job["ids"])


@pytest.mark.parametrize("broker", ["notify", "redis"])
async def test_a_stream_on_one_process_follows_work_done_on_another(
    live_server: Callable[..., LiveServer], db_backend: tuple[str, str | None], broker: str
) -> None:
    if db_backend[0] != "postgres":
        pytest.skip("several server processes are meant for PostgreSQL")
    env = {"OPENHORDE_SECRET_KEY": secrets.token_hex(32), "OPENHORDE_EVENT_STREAM_POLL_SECONDS": POLL_SECONDS}
    if broker == "redis":
        env |= {"OPENHORDE_REDIS_URL": "redis://127.0.0.1:6379/0", "OPENHORDE_REDIS_KEY_PREFIX": f"t{time.time_ns()}:"}
    watched, working = live_server(extra_env=env), live_server(extra_env=env)
    async with httpx.AsyncClient(base_url=watched.url, timeout=30) as client:
        requester = (await client.post("/api/v2/register", json={"username": "asker"})).json()["apikey"]
        owner = (await client.post(f"{working.api_url}v2/register", json={"username": "owner"})).json()["apikey"]
        request = {"prompt": "across", "params": {"width": 64, "height": 64, "n": 2}}
        queued = await client.post("/api/v2/generate/async", headers={"apikey": requester}, json=request)
        assert queued.status_code == 202, queued.text
        request_id = queued.json()["id"]
        async with EventReader(client, f"/api/v2/generate/stream/{request_id}") as reader:
            first = await reader.next_named()
            assert first is not None and first.name == "queued", watched.log_tail()
            for _ in range(2):
                job_ids = await _work_one(client, working.api_url, owner)
                started = await reader.next_named(seconds=8)
                image = await reader.next_named(seconds=8)
                assert started is not None and started.name == "started", (started, watched.log_tail())
                assert image is not None and image.name == "image", (image, watched.log_tail())
                assert started.data["id"] == image.data["id"] == job_ids[0]
            rest = await reader.until_end(seconds=8)
        assert [e.name for e in rest] == ["done"] and rest[0].data["finished"] == 2

        # Prefer: wait on the watched process, the work done on the other one.
        worker = asyncio.create_task(_work_one(client, working.api_url, owner))
        began = time.monotonic()
        waited = await client.post(
            "/api/v2/generate/async",
            headers={"apikey": requester, "Prefer": "wait=20"},
            json={"prompt": "waited", "params": {"width": 64, "height": 64}},
        )
        job_ids = await worker
        assert waited.status_code == 200, waited.text
        assert [g["id"] for g in waited.json()["generations"]] == job_ids
        assert time.monotonic() - began < 15
