"""Fixture plugin: a live server per test (uvicorn on a loopback port, in the test's event loop).

``horde`` gives real HTTP (``horde.client``), the app's database for checks that have no
endpoint, and factories for users and payloads. After each test the kudos ledger must
balance and every balance must equal the sum of its postings.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image

from openhorde.api.app import create_app
from openhorde.config import Settings
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos.ledger import check_ledger
from openhorde.storage.db import Database


def webp_bytes(size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small real WebP image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


@dataclass
class Account:
    id: int
    username: str
    apikey: str

    @property
    def headers(self) -> dict[str, str]:
        return {"apikey": self.apikey}


@dataclass
class Horde:
    """A running server and what tests need to talk to it."""

    client: httpx.AsyncClient
    settings: Settings
    app: Any
    workers_seen: list[str] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.app.state.db  # type: ignore[no-any-return]

    @property
    def ctx(self) -> HordeContext:
        return self.app.state.context  # type: ignore[no-any-return]

    async def register(self, username: str = "tester", kudos: float = 0) -> Account:
        response = await self.client.post("/api/v2/register", json={"username": username})
        assert response.status_code == 201, response.text
        body = response.json()
        account = Account(id=body["id"], username=body["username"], apikey=body["apikey"])
        if kudos:
            await self.grant(account, kudos)
        return account

    async def grant(self, account: Account, kudos: float) -> None:
        from openhorde.domain import accounts
        from openhorde.domain.kudos import transfers

        async with self.db.unit_of_work() as session:
            await transfers.grant(session, await accounts.get_user(session, account.id), kudos)

    async def make_admin(self, account: Account) -> None:
        from openhorde.domain import accounts

        async with self.db.unit_of_work() as session:
            (await accounts.get_user(session, account.id)).is_admin = True

    async def generate(self, account: Account, **overrides: Any) -> httpx.Response:
        body: dict[str, Any] = {"prompt": "a lighthouse", "params": {"width": 64, "height": 64, "steps": 5}}
        body.update(overrides)
        return await self.client.post("/api/v2/generate/async", json=body, headers=account.headers)

    async def pop(self, account: Account, name: str = "worker-1", **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "models": ["stable_diffusion"]}
        body.update(overrides)
        response = await self.client.post("/api/v2/generate/pop", json=body, headers=account.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def check(self, request_id: str) -> dict[str, Any]:
        """``GET /generate/check/{id}``, which must answer 200."""
        response = await self.client.get(f"/api/v2/generate/check/{request_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def upload_and_submit(
        self, account: Account, job: dict[str, Any], index: int = 0, **extra: Any
    ) -> httpx.Response:
        put = await self.client.put(job["r2_uploads"][index], content=webp_bytes())
        assert put.status_code == 200, put.text
        body = {"id": job["ids"][index], "generation": "R2", "state": "ok", "seed": 1, **extra}
        return await self.client.post("/api/v2/generate/submit", json=body, headers=account.headers)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` under uvicorn in this event loop on ``sock``; a client for it until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", proxy_headers=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def second_server(horde: Horde) -> AsyncIterator[httpx.AsyncClient]:
    """Another server on ``horde``'s database and data directory (same secret), on its own port."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    settings = horde.settings.model_copy(update={"port": port, "public_url": f"http://127.0.0.1:{port}"})
    async with serving(create_app(settings), sock) as client:
        yield client


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    """Extra settings for the ``horde`` fixture; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def horde(database_url: str, tmp_path: Path, horde_settings: dict[str, Any]) -> AsyncIterator[Horde]:
    sock = _free_socket()
    port = sock.getsockname()[1]
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        maintenance_interval_seconds=3600,
        # Tests change the database behind the server's back; reuse no check answers.
        check_cache_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
        # Tests call quickly from one address; tests of the limits turn them on through horde_settings.
        **{"rate_limits": "off", **horde_settings},
    )
    app = create_app(settings)
    async with serving(app, sock) as client:
        horde = Horde(client=client, settings=settings, app=app)
        yield horde
        async with horde.db.unit_of_work() as session:
            report = await check_ledger(session)
        assert report.ok, f"kudos ledger does not balance: {report}"
