"""Fixture plugin: a horde server per test, in the test's event loop, with ``Horde`` to talk to it.

``horde`` gives HTTP (``horde.client``), the app's database for checks that have no endpoint, and
factories for users and payloads. After each test the kudos ledger must balance and every balance
must equal the sum of its postings.

Two ways to serve, same ``Horde``:

* in-process (the default): the app's lifespan is entered and ``horde.client`` talks to it through
  ``httpx.ASGITransport``; no socket, no server loop, so it is the cheap one for HTTP contract tests.
  The transport buffers each whole response and ``request.client`` is ``("127.0.0.1", 123)``.
* live socket (``live_horde``, or ``horde`` in a test marked ``@pytest.mark.live``): uvicorn on a
  loopback port. For what only a real connection shows: event streams and other answers read while
  they are being written, slow or dripping peers, raw sockets, uvicorn's own checks, a second server
  process, and URLs handed to another process.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import socket
from collections import OrderedDict
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
from openhorde.api.http_protocol import JoinedWritesHttpToolsProtocol
from openhorde.config import GROUP_OF, Settings
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

        async with self.db.store() as store:
            await transfers.grant(store, await accounts.get_user(store, account.id), kudos)

    async def set_user(self, account: Account, **columns: Any) -> None:
        """Set columns of an account's row directly (test set-up: roles, limits), and make the server forget the
        account it may have cached for the key, as a change through the API would."""
        from openhorde.storage.tables import User

        async with self.db.unit_of_work() as session:
            user = await session.get(User, account.id)
            for name, value in columns.items():
                setattr(user, name, value)
        self.ctx.keys.forget(account.id)

    async def make_admin(self, account: Account) -> None:
        await self.set_user(account, is_admin=True)

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
    config = uvicorn.Config(
        app, log_level="warning", ws="none", lifespan="on", proxy_headers=False, http=JoinedWritesHttpToolsProtocol
    )
    server = uvicorn.Server(config)
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
    settings = horde.settings.model_copy(update={"port": port, "public_url": f"http://127.0.0.1:{port}"}, deep=True)
    async with serving(create_app(settings), sock) as client:
        yield client


@asynccontextmanager
async def in_process(app: FastAPI, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (its lifespan) in this event loop; a client that calls it without a socket until the block ends.

    Exceptions the app does not turn into an answer are raised in the test (``raise_app_exceptions``):
    behind uvicorn they would be a 500 and a traceback in the log, which no test here expects either.
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client


@functools.cache
def in_process_port() -> int:
    """The port in the settings of this process's in-process servers, which open no socket: one for all of them,
    so that their settings (and apps) can be equal. Nothing listens on it."""
    with _free_socket() as sock:
        return int(sock.getsockname()[1])


class AppCache:
    """Apps built by ``create_app``, kept for the next test with equal settings.

    Building an app's routes costs about a quarter of a second, more than most contract tests take. An app keeps
    nothing from one run to the next: its lifespan opens the database, the blob store and every cache afresh.
    A test may change its settings while it runs (they are the app's own object), so ``restore`` puts them back.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._apps: OrderedDict[str, tuple[Settings, FastAPI, Settings]] = OrderedDict()

    def get(self, settings: Settings) -> tuple[Settings, FastAPI]:
        """The app for ``settings`` and the settings object it runs on (equal to ``settings``)."""
        key = settings.model_dump_json()
        if key in self._apps:
            self._apps.move_to_end(key)
        else:
            self._apps[key] = (settings, create_app(settings), settings.model_copy(deep=True))
            while len(self._apps) > self.size:
                self._apps.popitem(last=False)
        own, app, _ = self._apps[key]
        return own, app

    def restore(self, settings: Settings) -> None:
        """Undo what a test changed in ``settings`` (an app's own)."""
        for own, _, pristine in self._apps.values():
            if own is settings:
                for name, value in pristine.flat_values().items():  # in place: the app may hold a group
                    group = GROUP_OF.get(name)
                    setattr(getattr(settings, group) if group else settings, name, copy.deepcopy(value))


APPS = AppCache()


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    """Extra settings for the ``horde`` fixture; a test module overrides this fixture to change them."""
    return {}


def _test_settings(database_url: str, data_dir: Path, port: int, horde_settings: dict[str, Any]) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        maintenance_interval_seconds=3600,
        _env_file=None,  # type: ignore[call-arg]
        # Tests call quickly from one address; tests of the limits turn them on through horde_settings. Tests change
        # the database behind the server's back, so it reuses no request counters unless a test asks for it.
        **{"rate_limits": "off", "check_cache_seconds": 0, **horde_settings},
    )


@asynccontextmanager
async def running_horde(
    database_url: str, data_dir: Path, horde_settings: dict[str, Any], *, live: bool
) -> AsyncIterator[Horde]:
    """A ``Horde`` on ``database_url``, served in-process or (``live``) by uvicorn on a loopback socket.

    On leaving, the kudos ledger must balance (checked while the app still runs, on its own database).
    """
    if live:
        sock = _free_socket()
        settings = _test_settings(database_url, data_dir, sock.getsockname()[1], horde_settings)
        app = create_app(settings)
        server = serving(app, sock)
    else:
        settings, app = APPS.get(_test_settings(database_url, data_dir, in_process_port(), horde_settings))
        server = in_process(app, settings.port)
    try:
        async with server as client:
            horde = Horde(client=client, settings=settings, app=app)
            yield horde
            async with horde.db.store() as store:
                report = await check_ledger(store)
            assert report.ok, f"kudos ledger does not balance: {report}"
    finally:
        APPS.restore(settings)


@pytest.fixture
async def horde(
    request: pytest.FixtureRequest, database_url: str, data_dir: Path, horde_settings: dict[str, Any]
) -> AsyncIterator[Horde]:
    """The server a test talks to: in-process, or on a loopback socket in a test marked ``live``."""
    live = request.node.get_closest_marker("live") is not None
    async with running_horde(database_url, data_dir, horde_settings, live=live) as horde:
        yield horde


@pytest.fixture
async def live_horde(database_url: str, data_dir: Path, horde_settings: dict[str, Any]) -> AsyncIterator[Horde]:
    """The server on a real loopback socket (uvicorn), for tests that need a connection; marks its tests ``live``."""
    async with running_horde(database_url, data_dir, horde_settings, live=True) as horde:
        yield horde
