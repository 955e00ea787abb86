"""Shared fixtures and the test tiers: database engines, a fresh database and a horde server per test.

Every test that asks for ``backend`` (or ``horde``, ``database_url``, ``migrated_database``) gets a fresh
database: on SQLite a copy of a migrated file, on PostgreSQL a ``CREATE DATABASE … TEMPLATE`` clone of a migrated
template.

Which engines a test runs on (``pytest_generate_tests`` below):

* SQLite alone by default: the HTTP contract, the domain and the repositories are the same SQL on both.
* ``@pytest.mark.both_databases``: SQLite and PostgreSQL, for tests whose point is how the engines differ:
  parallel calls racing for rows, locks, NUL bytes PostgreSQL refuses, pushes through LISTEN/NOTIFY.
* ``@pytest.mark.postgres``: PostgreSQL alone (several processes on one database, SKIP LOCKED, EXPLAIN).

Every PostgreSQL run carries the ``postgres`` marker, so ``-m "not postgres"`` leaves them all out.
``OPENHORDE_TEST_BACKENDS`` (e.g. ``sqlite,postgres``) overrides the choice: every database test runs on
the engines it names (a PostgreSQL-only test only if it names postgres).

Tiers (markers, registered in pyproject.toml): ``e2e``, ``browser``, ``chaos``, ``fuzz`` and ``generation``
are written on the slow tests' modules; every other test gets one of ``unit`` (no database, no server),
``integration`` (in-process against a migrated database, the HTTP API through httpx.ASGITransport) or ``live``
(a server on a loopback socket in the test's process) here, from the fixtures it uses. The fast tiers are
``-m "not e2e and not browser and not chaos and not fuzz and not generation"`` (``scripts/test --fast``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from openhorde.storage.db import Database
from openhorde.storage.migrate import upgrade_to_head

pytest_plugins = ["tests.live_server"]

POSTGRES_ADMIN_DSN = os.environ.get("OPENHORDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS_OVERRIDE = [b.strip() for b in os.environ.get("OPENHORDE_TEST_BACKENDS", "").split(",") if b.strip()]
# Per process, so pytest-xdist's workers (one process each) never share a template.
TEMPLATE_NAME = f"openhorde_template_{os.getpid()}"

DATABASE_FIXTURES = ("backend", "db_backend")
"""The fixtures that choose a test's engine: ``backend`` here, ``db_backend`` for the e2e server processes."""
SLOW_TIERS = ("chaos", "browser", "e2e", "fuzz", "generation")
"""Tier markers written on the slow tests themselves, slowest kind first."""


def torch_threads() -> int:
    """CPU threads for torch in one test process: the cores, shared among pytest-xdist's workers.

    Two workers each running torch on every core of a two-core machine spend most of their time in OpenMP's
    spinning waits for each other; a core each is several times faster."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    """Give torch, if a test module imported it, this process's share of the cores (see ``torch_threads``)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch_threads())


def engines_for(node: pytest.Item | Any) -> list[str]:
    """The engines a test (or its definition at collection) runs on; see the module's docstring."""
    postgres_only = node.get_closest_marker("postgres") is not None
    if BACKENDS_OVERRIDE:
        return [b for b in BACKENDS_OVERRIDE if b == "postgres"] if postgres_only else list(BACKENDS_OVERRIDE)
    if postgres_only:
        return ["postgres"]
    if node.get_closest_marker("both_databases") is not None:
        return ["sqlite", "postgres"]
    return ["sqlite"]


def _parametrized_directly(metafunc: pytest.Metafunc, name: str) -> bool:
    """Whether the test writes its own ``@pytest.mark.parametrize`` for ``name`` (then it chose already)."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        argnames = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each database test on the engines ``engines_for`` gives it, each PostgreSQL run marked ``postgres``."""
    for name in DATABASE_FIXTURES:
        if name in metafunc.fixturenames and not _parametrized_directly(metafunc, name):
            engines = engines_for(metafunc.definition)
            params = [pytest.param(e, marks=[pytest.mark.postgres] if e == "postgres" else []) for e in engines]
            metafunc.parametrize(name, params, indirect=True, ids=engines)


def _tier(item: pytest.Item) -> str | None:
    """The tier marker to add to ``item``: None when a slow tier is written on it already."""
    if any(item.get_closest_marker(tier) for tier in SLOW_TIERS):
        return None
    if item.get_closest_marker("live") is not None or "live_horde" in getattr(item, "fixturenames", ()):
        return "live"
    if {"backend", "database_url", "migrated_database", "horde"} & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def _weight(item: pytest.Item) -> int:
    """Lower runs earlier: the slowest kinds of test first, so that under pytest-xdist the long modules start
    at once and the many short ones fill the other worker, instead of one long module starting last."""
    for rank, tier in enumerate((*SLOW_TIERS, "live")):
        if item.get_closest_marker(tier) is not None:
            return rank
    return len(SLOW_TIERS) + 1


@pytest.hookimpl(tryfirst=True)  # before -m deselects by them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add each test's tier marker (``unit``, ``integration`` or ``live``) unless a slow tier is written on it."""
    for item in items:
        if (tier := _tier(item)) is not None:
            item.add_marker(tier)


# A second implementation of the hook (pytest wants the "pytest_" prefix; specname names the hook): trylast, to
# run after pytest-randomly's shuffle, which the stable sort keeps within each weight.
@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_slowest_first(items: list[pytest.Item]) -> None:
    # One weight per module (its heaviest test's), so a module's tests stay together and its module-scoped
    # fixtures (a browser, a server process) start once.
    module_weight: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        module_weight[module] = min(module_weight.get(module, len(SLOW_TIERS) + 1), _weight(item))
    items.sort(key=lambda item: module_weight[item.nodeid.split("::", 1)[0]])


async def admin_execute(sql: str) -> None:
    """Run one statement on the test PostgreSQL server's maintenance database (outside a transaction)."""
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def postgres_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the test PostgreSQL server."""
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{database}"


def _run_in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on a fresh loop in another thread (callable from inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade_to_head(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy for each test."""
    path = tmp_path_factory.mktemp("template") / "horde.db"
    _run_in_thread(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database to clone for each test."""
    _run_in_thread(admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}"'))
    _run_in_thread(admin_execute(f'CREATE DATABASE "{TEMPLATE_NAME}"'))
    _run_in_thread(_migrate(postgres_url(TEMPLATE_NAME)))
    yield TEMPLATE_NAME
    _run_in_thread(admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)'))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database engine a test runs on (parametrised by ``pytest_generate_tests``)."""
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty server data directory for one test.

    The same path in every test of this process (pytest-xdist's workers each have their own base temp):
    with the same database URL too, equal settings build an equal app, which ``tests/live_server.py``
    reuses instead of building its routes again for every test.
    """
    path = tmp_path_factory.getbasetemp() / "horde-data"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)  # private, as the server makes the one it creates
    return path


@pytest.fixture
async def database_url(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, at the same URL in every test of this process (see ``data_dir``)."""
    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), data_dir / "horde.db")
        yield f"sqlite+aiosqlite:///{data_dir / 'horde.db'}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"openhorde_test_{os.getpid()}"
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # left by an interrupted run
    await admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield postgres_url(name)
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def migrated_database(database_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on a fresh migrated database (``database_url``): for domain and repository tests without HTTP."""
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()
