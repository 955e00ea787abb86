"""Size limits in the server itself: request bodies, prompts, extra texts, names and lists.

Every refusal is a 4xx ``{"message", "rc"}`` that comes before anything is stored, and none leaves an error
in the log.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from openhorde.api.app import create_app
from openhorde.api.schemas.common import MAX_ID_CHARS, MAX_LIST_ITEM_CHARS, MAX_LIST_ITEMS
from openhorde.api.schemas.generate import MAX_EXTRA_TEXT_CHARS, MAX_EXTRA_TEXTS, MAX_SPECIAL_KEYS
from openhorde.config import Settings
from openhorde.domain.queue.request_rules import MAX_PROMPT_CHARS, MAX_PROMPT_WORDS
from openhorde.storage.tables import Request, Worker
from tests.live_server import Horde, webp_bytes

BODY_LIMIT = 256 * 1024
UPLOAD_LIMIT = 64 * 1024
"""Smaller than the body limit, as by default: ``PUT /blobs/...`` keeps its own limit under the guard's."""


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    return {"max_request_body_bytes": BODY_LIMIT, "max_upload_bytes": UPLOAD_LIMIT}


@pytest.fixture(autouse=True)
def _no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A refusal is the client's mistake: no ERROR record (a traceback) in the server's log."""
    uvicorn_errors = logging.getLogger("uvicorn.error")  # uvicorn's own loggers do not propagate to the root
    uvicorn_errors.addHandler(caplog.handler)
    try:
        yield
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def _count(horde: Horde, table: type[Request] | type[Worker]) -> int:
    async with horde.db.unit_of_work() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def _assert_refused(response: Any, status: int, rc: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["rc"] == rc, response.text
    assert response.json()["message"]


async def _raw_exchange(horde: Horde, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request's head and some body over a bare socket, without ending the body; the answer read back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", horde.settings.port)
    try:
        writer.write(head)
        for chunk in body_chunks:
            writer.write(chunk)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b'"}'), timeout=5)  # the JSON error ends the answer
    finally:
        writer.close()


# Request bodies ------------------------------------------------------------------------------------------


@pytest.mark.live  # a raw socket that never sends the body
async def test_a_body_declared_too_large_is_refused_before_it_is_sent(horde: Horde) -> None:
    account = await horde.register("sender")
    head = (
        f"POST /api/v2/generate/async HTTP/1.1\r\nHost: horde\r\napikey: {account.apikey}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = await _raw_exchange(horde, head, [])  # not one byte of the body: the answer comes anyway
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b'"rc":"RequestTooLarge"' in answer and b"connection: close" in answer.lower()
    assert await _count(horde, Request) == 0


@pytest.mark.live  # a raw socket whose chunked body never ends
async def test_a_streamed_body_is_cut_off_as_it_passes_the_limit(horde: Horde) -> None:
    account = await horde.register("streamer")
    head = (
        f"POST /api/v2/generate/async HTTP/1.1\r\nHost: horde\r\napikey: {account.apikey}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"a" * 65536
    # Just past the limit, and the body never ends: the server must answer without waiting for the rest.
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (BODY_LIMIT // len(chunk) + 1)
    answer = await _raw_exchange(horde, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b'"rc":"RequestTooLarge"' in answer
    assert await _count(horde, Request) == 0


@pytest.mark.live  # the 413 must reach a client over a connection the server answers early
async def test_a_client_that_sends_its_whole_body_first_still_reads_the_413(horde: Horde) -> None:
    account = await horde.register("uploader")
    headers = {**account.headers, "Content-Type": "application/json"}
    declared = await horde.client.post("/api/v2/generate/async", content=b" " * (4 * BODY_LIMIT), headers=headers)
    _assert_refused(declared, 413, "RequestTooLarge")

    async def stream() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it by
        yield b'{"prompt": "'
        for _ in range(2 * BODY_LIMIT // 4096):
            yield b"a" * 4096
        yield b'"}'

    streamed = await horde.client.post("/api/v2/generate/async", content=stream(), headers=headers)
    _assert_refused(streamed, 413, "RequestTooLarge")
    assert await _count(horde, Request) == 0
    # A body under the limit still goes through.
    assert (await horde.generate(account)).status_code == 202


async def test_image_uploads_keep_their_own_smaller_limit(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    assert (await horde.generate(requester)).status_code == 202
    job = await horde.pop(owner)
    upload_url = job["r2_uploads"][0]
    over_upload_limit = await horde.client.put(upload_url, content=b"\x00" * (UPLOAD_LIMIT + 1))
    _assert_refused(over_upload_limit, 413, "UploadTooLarge")
    over_body_limit = await horde.client.put(upload_url, content=b"\x00" * (BODY_LIMIT + 1))
    _assert_refused(over_body_limit, 413, "RequestTooLarge")
    # A real image, NUL bytes and all, is accepted: the guard reads no text in binary bodies.
    assert b"\x00" in webp_bytes()
    assert (await horde.upload_and_submit(owner, job)).status_code == 200


def test_the_default_body_limit_holds_a_base64_source_image_and_mask_of_the_upload_limit() -> None:
    settings = Settings(_env_file=None, max_upload_bytes=3_000_000)  # type: ignore[call-arg]
    base64_image = len(base64.b64encode(b"x" * 3_000_000))
    assert 2 * base64_image < settings.resolved_max_request_body_bytes < 2 * base64_image + 8 * 1024 * 1024
    explicit = Settings(_env_file=None, max_request_body_bytes=5000)  # type: ignore[call-arg]
    assert explicit.resolved_max_request_body_bytes == 5000


# Prompts -------------------------------------------------------------------------------------------------


async def test_a_prompt_over_the_character_or_word_limit_is_refused_and_not_queued(horde: Horde) -> None:
    account = await horde.register("writer")
    too_many_characters = await horde.generate(account, prompt="a" * (MAX_PROMPT_CHARS + 1))
    _assert_refused(too_many_characters, 400, "InvalidPromptSize")
    too_many_words = await horde.generate(account, prompt="a " * (MAX_PROMPT_WORDS + 1))  # under the characters
    _assert_refused(too_many_words, 400, "InvalidPromptSize")
    assert await _count(horde, Request) == 0
    assert (await horde.generate(account, prompt="a" * MAX_PROMPT_CHARS)).status_code == 202


# Extra texts, names and lists ----------------------------------------------------------------------------


async def test_extra_texts_are_bounded(horde: Horde) -> None:
    account = await horde.register("texter")
    text = {"text": "https://example.com", "reference": "qr_code"}
    base = {"width": 64, "height": 64, "steps": 5}
    cases = [
        [text] * (MAX_EXTRA_TEXTS + 1),
        [{**text, "text": "a" * (MAX_EXTRA_TEXT_CHARS + 1)}],
        [{**text, "reference": "r" * 101}],
    ]
    for extra_texts in cases:
        response = await horde.generate(account, params={**base, "extra_texts": extra_texts})
        _assert_refused(response, 400, "ValidationError")
    assert await _count(horde, Request) == 0
    accepted = await horde.generate(account, params={**base, "extra_texts": [text] * MAX_EXTRA_TEXTS})
    assert accepted.status_code == 202, accepted.text


async def test_names_and_lists_in_requests_are_bounded(horde: Horde) -> None:
    account = await horde.register("lister")
    base = {"width": 64, "height": 64, "steps": 5}
    cases: list[dict[str, Any]] = [
        {"models": ["m" * 256]},
        {"models": ["stable_diffusion"] * (MAX_LIST_ITEMS + 1)},
        {"workers": ["w" * (MAX_ID_CHARS + 1)]},
        {"workers": ["00000000-0000-0000-0000-000000000000"] * (MAX_LIST_ITEMS + 1)},
        {"params": {**base, "loras": [{"name": "x"}] * (MAX_LIST_ITEMS + 1)}},
        {"params": {**base, "tis": [{"name": "x"}] * (MAX_LIST_ITEMS + 1)}},
        {"params": {**base, "special": {f"key{i}": i for i in range(MAX_SPECIAL_KEYS + 1)}}},
    ]
    for overrides in cases:
        response = await horde.generate(account, **overrides)
        _assert_refused(response, 400, "ValidationError")
    assert await _count(horde, Request) == 0


async def test_names_and_lists_of_workers_are_bounded(horde: Horde) -> None:
    owner = await horde.register("owner")
    cases: list[dict[str, Any]] = [
        {"name": "w" * 101},
        {"priority_usernames": ["u" * (MAX_LIST_ITEM_CHARS + 1)]},
        {"priority_usernames": ["owner#2"] * (MAX_LIST_ITEMS + 1)},
        {"blacklist": ["b" * (MAX_LIST_ITEM_CHARS + 1)]},
        {"blacklist": ["word"] * (MAX_LIST_ITEMS + 1)},
        {"models": ["stable_diffusion"] * (MAX_LIST_ITEMS + 1)},
    ]
    for overrides in cases:
        body = {"name": "worker-1", "models": ["stable_diffusion"], **overrides}
        response = await horde.client.post("/api/v2/generate/pop", json=body, headers=owner.headers)
        _assert_refused(response, 400, "ValidationError")
    assert await _count(horde, Worker) == 0


def _constraint(schema: dict[str, Any], key: str) -> Any:
    """``key`` of a property's schema, looked for in its ``anyOf`` branches too (optional fields)."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if key in branch:
            return branch[key]
    return None


def test_the_openapi_document_shows_the_limits() -> None:
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    schemas = document["components"]["schemas"]
    generation, params = schemas["GenerationInput"]["properties"], schemas["ImageParams"]["properties"]
    pop = schemas["PopInput"]["properties"]
    assert _constraint(generation["models"], "maxItems") == MAX_LIST_ITEMS
    assert _constraint(generation["models"], "items")["maxLength"] == 255
    assert _constraint(generation["workers"], "items")["maxLength"] == MAX_ID_CHARS
    assert f"{MAX_PROMPT_CHARS:,}" in generation["prompt"]["description"]
    assert _constraint(params["extra_texts"], "maxItems") == MAX_EXTRA_TEXTS
    assert schemas["ExtraText"]["properties"]["text"]["maxLength"] == MAX_EXTRA_TEXT_CHARS
    assert _constraint(params["seed"], "maxLength") is not None
    assert _constraint(params["special"], "maxProperties") == MAX_SPECIAL_KEYS
    assert _constraint(pop["blacklist"], "items")["maxLength"] == MAX_LIST_ITEM_CHARS
    assert _constraint(pop["priority_usernames"], "maxItems") == MAX_LIST_ITEMS
