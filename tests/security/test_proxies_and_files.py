"""Proxy headers and files: X-Forwarded-For counts only from listed proxies; data files are the owner's.

The HTTP tests run on SQLite only: which address a call counts against has nothing to do with the database.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openhorde.api.app import create_app
from openhorde.api.proxies import client_address
from openhorde.config import Settings
from tests.live_server import Horde

LIMITED = {"rate_limits": "on", "rate_limit_default": "2/minute"}


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _modes(horde: Horde, forwarded_for: str) -> int:
    answer = await horde.client.get("/api/v2/status/modes", headers={"X-Forwarded-For": forwarded_for})
    return answer.status_code


@pytest.mark.parametrize("horde_settings", [LIMITED])
async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(horde: Horde) -> None:
    statuses = [await _modes(horde, f"203.0.113.{i}") for i in range(1, 4)]
    assert statuses == [200, 200, 429], "a made-up X-Forwarded-For dodged the per-address limit"


@pytest.mark.parametrize("horde_settings", [{**LIMITED, "trusted_proxies": "127.0.0.1"}])
async def test_a_trusted_proxy_names_the_client(horde: Horde) -> None:
    assert [await _modes(horde, f"203.0.113.{i}") for i in range(1, 4)] == [200, 200, 200]
    assert [await _modes(horde, "198.51.100.7") for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "client"),
    [
        ("127.0.0.1", ["203.0.113.9"], "", "127.0.0.1"),
        ("198.51.100.1", ["203.0.113.9"], "127.0.0.1", "198.51.100.1"),
        ("127.0.0.1", ["203.0.113.9"], "127.0.0.1", "203.0.113.9"),
        # A client may write anything in front; the right-most hop the trusted proxy added is the client.
        ("127.0.0.1", ["6.6.6.6, 203.0.113.9"], "127.0.0.1", "203.0.113.9"),
        ("10.0.0.2", ["6.6.6.6", "203.0.113.9, 10.0.0.1"], "10.0.0.0/8", "203.0.113.9"),
        ("127.0.0.1", ["not-an-address"], "127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", [], "127.0.0.1", "127.0.0.1"),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(peer: str, header: list[str], trusted: str, client: str) -> None:
    assert client_address(peer, header, trusted) == client


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_its_wal_the_blobs_and_the_secret_are_owner_only(tmp_path: Path, loose_umask: Any) -> None:
    data_dir = tmp_path / "fresh"
    app = create_app(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        await app.state.context.blobs.put("sources/probe.webp", b"RIFF")
        await app.state.context.blobs.copy("sources/probe.webp", "images/probe.webp")
        async with app.state.db.unit_of_work() as session:
            await session.connection()  # a write transaction: SQLite creates its WAL and shared-memory files
        files = {path.name: _mode(path) for path in data_dir.rglob("*") if path.is_file()}
        folders = {path.name: _mode(path) for path in [data_dir, *data_dir.rglob("*")] if path.is_dir()}
    assert {"horde.db", "horde.db-wal", "horde.db-shm", "secret.key", "probe.webp"} <= files.keys()
    assert all(mode == 0o600 for mode in files.values()), files
    assert {"fresh", "blobs", "sources", "images"} <= folders.keys()
    assert all(mode == 0o700 for mode in folders.values()), folders
