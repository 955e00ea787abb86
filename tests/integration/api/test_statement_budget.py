"""How many SQL statements each hot call sends: the budget the hot path is designed to.

A job's whole life is driven through HTTP on a migrated database while an engine listener counts the statements
each call sends (``BEGIN``/``COMMIT`` are not statements here; SQLite's ``BEGIN IMMEDIATE`` is left out as well).
The budgets are upper bounds: a change that adds a statement to a hot call fails here and has to say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.live_server import Horde, webp_bytes

pytestmark = pytest.mark.both_databases


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    # The production defaults for the caches this budget relies on (the test fixture turns the check's off).
    return {"check_cache_seconds": 1.0}


class StatementLog:
    """The statements an engine sends, as SQL text."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in {"BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK"}:
            self.sql.append(statement)


@contextmanager
def counting(horde: Horde) -> Iterator[StatementLog]:
    log = StatementLog()
    engine = horde.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", log.on_execute)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", log.on_execute)


async def test_a_job_cycle_stays_within_its_statement_budget(horde: Horde, backend: str) -> None:
    requester = await horde.register("requester", kudos=1_000)
    owner = await horde.register("owner")
    worker_body = {"name": "budget-worker", "models": ["stable_diffusion"]}
    spent: dict[str, list[str]] = {}

    async def call(name: str, method: str, url: str, account: Any = None, **kwargs: Any) -> Any:
        headers = account.headers if account else {}
        with counting(horde) as log:
            response = await horde.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code < 300, f"{name}: {response.status_code} {response.text}"
        spent[name] = log.sql
        return response

    async def job_cycle() -> None:
        body = {"prompt": "a lighthouse", "params": {"width": 64, "height": 64, "steps": 5}}
        created = await call("async", "POST", "/api/v2/generate/async", requester, json=body)
        request_id = created.json()["id"]
        await call("check (new)", "GET", f"/api/v2/generate/check/{request_id}")
        await call("check (unchanged)", "GET", f"/api/v2/generate/check/{request_id}")
        popped = await call("pop (a job)", "POST", "/api/v2/generate/pop", owner, json=worker_body)
        job = popped.json()
        assert len(job["ids"]) == 1, job
        await call("upload", "PUT", job["r2_uploads"][0], content=webp_bytes())
        submit = {"id": job["ids"][0], "generation": "R2", "state": "ok", "seed": 1}
        await call("submit", "POST", "/api/v2/generate/submit", owner, json=submit)
        checked = (await call("check (done)", "GET", f"/api/v2/generate/check/{request_id}")).json()
        status = (await call("status (done)", "GET", f"/api/v2/generate/status/{request_id}")).json()
        # The check may answer from the counters the submit returned: they are the status's, the images aside.
        assert checked == {key: value for key, value in status.items() if key in checked}, (checked, status)
        assert checked["done"] and checked["finished"] == 1 and checked["kudos"] > 0, checked
        empty = await call("pop (first empty)", "POST", "/api/v2/generate/pop", owner, json=worker_body)
        assert empty.json()["ids"] == [], empty.text
        # Nothing was queued since: answered from memory.
        await call("pop (idle)", "POST", "/api/v2/generate/pop", owner, json=worker_body)
        await call("heartbeat", "GET", "/api/v2/status/heartbeat")

    # The first cycle fills the per-process caches (keys, filters, the worker's state); the second is the steady
    # state a busy horde lives in.
    await job_cycle()
    await job_cycle()

    budget = BUDGETS[backend]
    counts = {name: len(sql) for name, sql in spent.items()}
    over = {name: spent[name] for name in budget if counts[name] > budget[name]}
    assert not over, f"over budget: {counts} (budget {budget}); the statements of those over it: {over}"


BUDGETS: dict[str, dict[str, int]] = {
    # PostgreSQL: data-modifying CTEs make the pop (find and take) and the submit (claim and settle) one statement each.
    "postgres": {
        "async": 1,  # usage, lock, standing and limits, the request with its model rows, its eligible workers
        "check (new)": 3,  # the request, and the queue snapshot (two statements, shared by every check for 1 s)
        "check (unchanged)": 0,
        "pop (a job)": 1,  # find and take, a transaction of its own
        "upload": 1,
        "submit": 1,  # claim and settle, a transaction of its own
        "check (done)": 0,  # the counters the submit's statement returned, kept by this process
        "status (done)": 0,  # its one image: the submit's process kept the finished job with the counters
        "pop (first empty)": 2,  # find, and why nothing was found (the skipped counts)
        "pop (idle)": 0,
        "heartbeat": 0,
    },
    # SQLite has no data-modifying CTEs: the take and the settle are a few statements each, run by its one writer.
    "sqlite": {
        "async": 3,
        "check (new)": 3,
        "check (unchanged)": 0,
        "pop (a job)": 4,
        "upload": 1,
        "submit": 9,
        "check (done)": 1,
        "status (done)": 1,  # the counters and the done jobs together
        "pop (first empty)": 2,
        "pop (idle)": 0,
        "heartbeat": 0,
    },
}
