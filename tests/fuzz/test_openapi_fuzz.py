"""Schemathesis against our own OpenAPI document: every operation, generated inputs, real keys.

One server (SQLite, rate limits off) runs in a background thread for the whole module, so
schemathesis's synchronous client can call it. Each operation gets ``MAX_EXAMPLES``
generated cases (derandomized: the same cases every run) sent with a real API key: an
admin's for the privileged routes, an ordinary user's with kudos for the rest. Every answer
must be below 500, carry a documented status code, and match the schema documented for
that status. Nothing is excluded: the Stripe webhook (no signature) and the blob routes (no
presigned signature) must refuse with a 4xx like any other bad input. At the end the kudos
ledger must still balance.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from openhorde.api.app import create_app
from openhorde.config import Settings
from openhorde.domain import accounts
from openhorde.domain.kudos import transfers
from openhorde.domain.kudos.ledger import check_ledger
from openhorde.storage.db import Database
from tests.live_server import _free_socket

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 40
"""Generated cases per operation: about 57 operations × 40 ≈ 2,300 requests, under two minutes."""

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]

PRIVILEGED_PREFIXES = (
    "/api/v2/filters",
    "/api/v2/audit",
    "/api/v2/operations",
    "/api/v2/kudos/award",
    "/api/v2/status/modes",
    "/api/v2/users",
    "/api/v2/workers/messages",
)
"""Routes fuzzed with the admin's key (the rest with an ordinary user's, so ownership checks run too)."""

RESET_MODES = {"maintenance": False, "invite_only": False, "raid": False}


@dataclass
class FuzzServer:
    base_url: str
    database_url: str
    user_key: str
    admin_key: str


async def _promote(database_url: str, user_id: int, admin_id: int) -> None:
    db = Database(database_url)
    try:
        async with db.store() as store:
            user = await accounts.get_user(store, user_id)
            await transfers.grant(store, user, 10_000)
            await store.accounts.change(admin_id, is_admin=True, is_moderator=True)
            await transfers.grant(store, await accounts.get_user(store, admin_id), 10_000)
    finally:
        await db.dispose()


async def _ledger_ok(database_url: str) -> Any:
    db = Database(database_url)
    try:
        async with db.store() as store:
            return await check_ledger(store)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def fuzz_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    data_dir.mkdir()
    shutil.copy(sqlite_template, data_dir / "horde.db")
    database_url = f"sqlite+aiosqlite:///{data_dir / 'horde.db'}"
    sock = _free_socket()
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    config = Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=port,
        public_url=base_url,
        maintenance_interval_seconds=3600,
        check_cache_seconds=0,
        rate_limits="off",
        _env_file=None,  # type: ignore[call-arg]
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="critical", ws="none", lifespan="on", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fuzz server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            user = client.post("/api/v2/register", json={"username": "fuzzer"}).json()
            admin = client.post("/api/v2/register", json={"username": "fuzz-admin"}).json()
        asyncio.run(_promote(database_url, user["id"], admin["id"]))
        yield FuzzServer(base_url, database_url, user["apikey"], admin["apikey"])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    report = asyncio.run(_ledger_ok(database_url))
    assert report.ok, f"kudos ledger does not balance after fuzzing: {report}"


def _operations() -> list[tuple[str, str]]:
    """``(method, path)`` of every documented operation, read from the app's OpenAPI at collection time."""
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: FuzzServer) -> Any:
    """The schema as the live server publishes it."""
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/api/swagger.json")


def test_the_served_schema_lists_every_operation(api_schema: Any) -> None:
    served = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert served == set(OPERATIONS)
    assert len(OPERATIONS) > 50


def _call(case: Any, server: FuzzServer) -> None:
    path = case.operation.path
    privileged = path.startswith(PRIVILEGED_PREFIXES)
    # An X-Fields mask answers part of the documented body by design (tests/integration/api/test_field_masks.py):
    # the fuzzer checks the whole answers.
    headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "x-fields"}
    case.headers = {**headers, "apikey": server.admin_key if privileged else server.user_key}
    try:
        case.call_and_validate(base_url=server.base_url, checks=CHECKS)
    finally:
        if path == "/api/v2/status/modes" and case.method.upper() == "PUT":
            # Maintenance mode would turn every later generation into a 503: put the horde back.
            reset = httpx.put(
                f"{server.base_url}/api/v2/status/modes", json=RESET_MODES, headers={"apikey": server.admin_key}
            )
            assert reset.status_code == 200, reset.text
            assert not any(reset.json().values()), reset.text


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_within_its_schema(
    method: str, path: str, api_schema: Any, fuzz_server: FuzzServer
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        _call(case, fuzz_server)

    fuzz()
