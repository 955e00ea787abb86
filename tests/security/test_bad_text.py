"""No 500 on bad text: NUL characters, lone surrogates, endless seeds, odd Stripe amounts.

PostgreSQL refuses a NUL in text and asyncpg cannot encode a lone surrogate, so either used to be a 500 there
(and the NUL was stored on SQLite). Now every route refuses them with 400 ``InvalidCharacters`` before any
query, on both databases, and no refusal leaves an error in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from openhorde.api.request_guard import RequestGuard
from openhorde.domain import accounts
from openhorde.domain.billing import tiers
from openhorde.domain.kudos import transfers
from openhorde.domain.kudos.ledger import MAX_KUDOS_AMOUNT
from openhorde.errors import KudosValidationError
from openhorde.storage.tables import Request
from tests.integration.api.test_stripe import SECRET, deliver, event, find_user, invoice_paid
from tests.integration.test_cli_admin import Cli
from tests.live_server import Account, Horde

NUL = "a\x00b"
LONE_SURROGATE = "a\ud800b"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(autouse=True)
def _no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is the client's mistake: no ERROR record (a traceback, a 500) in the server's log."""
    uvicorn_errors = logging.getLogger("uvicorn.error")  # uvicorn's own loggers do not propagate to the root
    uvicorn_errors.addHandler(caplog.handler)
    try:
        yield
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _refused_as_bad_text(response: httpx.Response, what: str) -> None:
    assert response.status_code == 400, (what, response.status_code, response.text)
    assert response.json()["rc"] == "InvalidCharacters", (what, response.text)


async def _openapi(horde: Horde) -> dict[str, Any]:
    response = await horde.client.get("/api/swagger.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in METHODS:
                yield path, method, operation


def _fill_path(path: str, operation: dict[str, Any], bad: dict[str, str] | None = None) -> str:
    """``path`` with every parameter filled with a plausible value, or the bad one given for it."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            plausible = "1" if parameter.get("schema", {}).get("type") == "integer" else "x"
            path = path.replace(f"{{{parameter['name']}}}", (bad or {}).get(parameter["name"], plausible))
    return path


async def _admin(horde: Horde) -> Account:
    admin = await horde.register("admin")
    await horde.make_admin(admin)
    return admin


# Paths, query strings and headers --------------------------------------------------------------------------


@pytest.mark.both_databases  # PostgreSQL refuses a NUL in text: a guard that let one through is a 500 there
async def test_every_route_refuses_a_nul_in_its_path_and_query_parameters(horde: Horde) -> None:
    admin = await _admin(horde)
    document = await _openapi(horde)
    tried = 0
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                url = _fill_path(path, operation, {parameter["name"]: "a%00b"})
            elif parameter["in"] == "query":
                url = f"{_fill_path(path, operation)}?{parameter['name']}=a%00b"
            else:
                continue
            response = await horde.client.request(method, url, headers=admin.headers)
            _refused_as_bad_text(response, f"{method} {url}")
            # A surrogate's UTF-8 bytes decode to replacement characters: whatever the answer, never a 5xx.
            surrogate_url = url.replace("a%00b", "a%ED%A0%80b")
            answer = await horde.client.request(method, surrogate_url, headers=admin.headers)
            assert answer.status_code < 500, (method, surrogate_url, answer.text)
            tried += 1
        # A route without parameters gets a query string anyway: it is read before any route is chosen.
        url = f"{_fill_path(path, operation)}?anything=%00"
        _refused_as_bad_text(await horde.client.request(method, url, headers=admin.headers), f"{method} {url}")
    assert tried > 30  # the walk saw the routes


@pytest.mark.live  # uvicorn's own refusal of a NUL in a header
async def test_a_nul_in_a_header_is_refused(horde: Horde) -> None:
    # Through a real server: uvicorn itself refuses a NUL in a header (a 400 of its own), never a 500.
    for header in ("apikey", "Client-Agent", "Idempotency-Key", "Last-Event-ID", "Stripe-Signature"):
        reader, writer = await asyncio.open_connection("127.0.0.1", horde.settings.port)
        writer.write(f"GET /api/v2/find_user HTTP/1.1\r\nHost: horde\r\n{header}: a\x00b\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 400 "), (header, status_line)

    # Behind any other server, the guard refuses it before the app sees it.
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/v2/find_user", "query_string": b""}
    await RequestGuard(app, max_body_bytes=1024)({**scope, "headers": [(b"apikey", b"a\x00b")]}, receive, send)
    assert not seen and sent[0]["status"] == 400
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["rc"] == "InvalidCharacters"


# JSON bodies -----------------------------------------------------------------------------------------------


def _schema(document: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in reference:
        return document["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return reference


def _may_be_text(schema: dict[str, Any]) -> bool:
    return any(branch.get("type") == "string" for branch in [schema, *schema.get("anyOf", [])])


def _json(body: Any) -> bytes:
    """JSON with non-ASCII escaped: a lone surrogate travels as ``\\ud800``, as a client would send it."""
    return json.dumps(body, ensure_ascii=True).encode()


@pytest.mark.both_databases  # PostgreSQL refuses a NUL, asyncpg a lone surrogate: a 500 there if let through
async def test_every_json_body_refuses_a_nul_or_a_lone_surrogate_in_any_text_field(horde: Horde) -> None:
    admin = await _admin(horde)
    document = await _openapi(horde)
    headers = {**admin.headers, "Content-Type": "application/json"}
    tried = 0
    for path, method, operation in _operations(document):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        url = _fill_path(path, operation)
        for field, schema in _schema(document, content["schema"]).get("properties", {}).items():
            if not _may_be_text(schema):
                continue
            for bad in (NUL, LONE_SURROGATE):
                response = await horde.client.request(method, url, content=_json({field: bad}), headers=headers)
                _refused_as_bad_text(response, f"{method} {url} {field}={bad!r}")
                tried += 1
    assert tried > 40


async def test_nested_text_and_free_form_objects_are_checked_too(horde: Horde) -> None:
    account = await horde.register("nester")
    base = {"width": 64, "height": 64, "steps": 5}
    cases: list[dict[str, Any]] = [
        {"params": {**base, "seed": NUL}},
        {"params": {**base, "loras": [{"name": LONE_SURROGATE}]}},
        {"params": {**base, "extra_texts": [{"text": NUL, "reference": "qr_code"}]}},
        {"params": {**base, "special": {"key": {"deeper": [NUL]}}}},  # a dict[str, Any]: any depth
        {"params": {**base, "special": {LONE_SURROGATE: 1}}},  # keys too
        {"models": [NUL]},
        {"unknown_field": NUL},
    ]
    headers = {**account.headers, "Content-Type": "application/json"}
    for overrides in cases:
        body = {"prompt": "a lighthouse", "params": base, **overrides}
        response = await horde.client.post("/api/v2/generate/async", content=_json(body), headers=headers)
        _refused_as_bad_text(response, repr(overrides))
    async with horde.db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(Request)) == 0


# Seeds -----------------------------------------------------------------------------------------------------


async def test_a_seed_of_thousands_of_digits_is_refused(horde: Horde) -> None:
    account = await horde.register("seeder")
    base = {"width": 64, "height": 64, "steps": 5}
    refused = await horde.generate(account, params={**base, "seed": "9" * 5000})
    assert refused.status_code == 400 and refused.json()["rc"] == "ValidationError", refused.text
    as_number = await horde.client.post(
        "/api/v2/generate/async",
        content=b'{"prompt": "x", "params": {"seed": ' + b"9" * 5000 + b"}}",
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert as_number.status_code == 400, as_number.text
    async with horde.db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(Request)) == 0
    assert (await horde.generate(account, params={**base, "seed": "9" * 256})).status_code == 202


# Stripe events and credit grants ---------------------------------------------------------------------------

BAD_AMOUNTS: list[Any] = [
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e400",
    "1e3",
    "-5",
    "0",
    "lots",
    "",
    str(MAX_KUDOS_AMOUNT + 1),
    float("nan"),  # JSON's NaN, which Python's json reads
    float("inf"),
    -5,
    0,
    MAX_KUDOS_AMOUNT + 1,
    True,
    False,
    None,
    [],
    ["100"],
    {"kudos": 100},
]


def _payment(account: Account, kudos: Any) -> dict[str, Any]:
    return event(
        "checkout.session.completed",
        {
            "id": "cs_pay",
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "metadata": {"user_id": str(account.id), "kudos": kudos},
        },
    )


async def test_stripe_amounts_that_are_not_a_sane_number_are_refused_and_move_no_kudos(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    buyer = await horde.register("buyer")
    for kudos in BAD_AMOUNTS:
        response = await deliver(horde, _payment(buyer, kudos))
        assert response.status_code == 400, (kudos, response.text)
        assert response.json()["rc"] == "StripeEventUnusable", (kudos, response.text)
    seen = await find_user(horde, buyer)
    assert seen["kudos"] == 0 and seen["tier"] == "free"
    paid = await deliver(horde, _payment(buyer, "2500.50"))
    assert paid.status_code == 200 and paid.json()["outcome"] == "applied", paid.text
    assert (await find_user(horde, buyer))["kudos"] == 2500.5


async def test_stripe_periods_and_ids_of_the_wrong_kind_are_refused(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    fan = await horde.register("fan")
    checkout = event(
        "checkout.session.completed",
        {
            "mode": "subscription",
            "payment_status": "paid",
            "client_reference_id": str(fan.id),
            "customer": "c" * 10_000,  # no Stripe id is this long: it is not stored
        },
    )
    assert (await deliver(horde, checkout)).status_code == 200
    for start in ("yesterday", True, None, float("nan"), float("inf"), 1e300, -1, [1]):
        renewal = invoice_paid("cus_x", 0)
        renewal["data"]["object"] = {
            "customer": "cus_x",
            "subscription_details": {"metadata": {"user_id": str(fan.id)}},
            "lines": {"data": [{"period": {"start": start, "end": 1}}]},
        }
        response = await deliver(horde, renewal)
        assert response.status_code == 400 and response.json()["rc"] == "StripeEventUnusable", (start, response.text)
    for bad_lines in ("lines", [1], {"data": "x"}, {"data": [[]]}):
        renewal = invoice_paid("cus_x", 0)
        renewal["data"]["object"] = {
            "customer": "cus_x",
            "subscription_details": {"metadata": {"user_id": str(fan.id)}},
            "lines": bad_lines,
            "parent": "x",
        }
        response = await deliver(horde, renewal)
        assert response.status_code == 400, (bad_lines, response.text)
    for reference in ("9" * 5000, "²", str(2**70)):
        unknown = event("checkout.session.completed", {**checkout["data"]["object"], "client_reference_id": reference})
        response = await deliver(horde, unknown)
        assert response.status_code == 400 and response.json()["rc"] == "StripeEventUnusable", response.text
    for bad_id in ("evt_" + "x" * 500, "evt_\x00", "evt_\ud800"):
        response = await deliver(horde, {**checkout, "id": bad_id})
        assert response.status_code == 400, (bad_id[:10], response.text)
    assert (await find_user(horde, fan))["kudos"] == horde.settings.economy.supporter_monthly_kudos  # the one checkout


async def test_credit_grants_and_admin_grants_have_an_upper_bound(horde: Horde) -> None:
    admin = await _admin(horde)
    user = await horde.register("granted")
    headers = {**admin.headers, "Content-Type": "application/json"}
    for kudos in ("NaN", "Infinity", str(MAX_KUDOS_AMOUNT + 1)):
        body = f'{{"kudos": {kudos}, "reference": "invoice-1"}}'.encode()
        response = await horde.client.post(f"/api/v2/users/{user.id}/credits", content=body, headers=headers)
        assert response.status_code == 400, (kudos, response.text)
        change = await horde.client.put(f"/api/v2/users/{user.id}", content=f'{{"kudos": {kudos}}}', headers=headers)
        assert change.status_code == 400, (kudos, change.text)

    # The domain functions every path goes through (the command line passes any float) refuse them too.
    for kudos in (math.nan, math.inf, -math.inf, MAX_KUDOS_AMOUNT + 1, -MAX_KUDOS_AMOUNT - 1):
        async with horde.db.store() as store:
            target = await accounts.get_user(store, user.id)
            with pytest.raises(KudosValidationError):
                await transfers.grant(store, target, kudos)
            with pytest.raises(KudosValidationError):
                await tiers.grant_credits(store, None, target, kudos, f"ref-{kudos}")
    assert (await find_user(horde, user))["kudos"] == 0


@pytest.mark.e2e  # `openhorde admin` processes
async def test_the_admin_command_line_refuses_a_grant_that_is_not_a_sane_number(horde: Horde, tmp_path: Path) -> None:
    user = await horde.register("granted")
    cli = Cli(data_dir=horde.settings.data_dir, database_url=horde.settings.resolved_database_url, cwd=tmp_path)
    for kudos in ("nan", "1e300"):
        ran = await cli("grant", str(user.id), kudos)
        assert ran.code == 1 and "Error:" in ran.stderr and "Traceback" not in ran.stderr, ran
    assert (await find_user(horde, user))["kudos"] == 0
