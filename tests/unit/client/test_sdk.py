"""``HordeClient`` against scripted HTTP answers (an ``httpx.MockTransport``): error decoding, retries, waiting."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from openhorde.client.sdk import (
    ApiError,
    ClientError,
    HordeClient,
    NotAHordeApi,
    RequestTimedOut,
    ServerUnreachable,
    api_base,
)

CHECK = {
    "finished": 0,
    "processing": 0,
    "restarted": 0,
    "waiting": 1,
    "done": False,
    "faulted": False,
    "wait_time": 3,
    "queue_position": 1,
    "kudos": 0,
    "is_possible": True,
}


def client(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> HordeClient:
    transport = httpx.MockTransport(handler)
    return HordeClient("http://horde.test", "secret-key", backoff_seconds=0, transport=transport, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:7001", "http://127.0.0.1:7001/api/v2"),
        ("http://127.0.0.1:7001/", "http://127.0.0.1:7001/api/v2"),
        ("https://aihorde.net/api", "https://aihorde.net/api/v2"),
        ("https://aihorde.net/api/v2/", "https://aihorde.net/api/v2"),
        ("http://host/horde/api/", "http://host/horde/api/v2"),
    ],
)
def test_api_base_accepts_the_address_with_or_without_api(given: str, base: str) -> None:
    assert api_base(given) == base


@pytest.mark.parametrize("bad", ["127.0.0.1:7001", "ftp://host", "http://", ""])
def test_api_base_refuses_what_is_not_an_http_url(bad: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        api_base(bad)


def test_an_api_error_carries_message_rc_status_and_field_reasons() -> None:
    body = {"message": "Input payload validation failed", "rc": "ValidationError", "errors": {"params.width": "bad"}}
    with client(lambda _r: httpx.Response(400, json=body)) as horde, pytest.raises(ApiError) as caught:
        horde.submit({"prompt": "x"})
    error = caught.value
    assert (error.message, error.rc, error.status_code) == ("Input payload validation failed", "ValidationError", 400)
    assert str(error) == "Input payload validation failed (ValidationError): params.width: bad"


def test_a_non_json_server_error_still_says_what_happened() -> None:
    page = "<html><body><h1>Internal Server Error</h1></body></html>"
    with client(lambda _r: httpx.Response(500, text=page)) as horde, pytest.raises(ApiError) as caught:
        horde.find_user()
    assert caught.value.status_code == 500 and caught.value.rc is None
    assert str(caught.value) == f"GET /api/v2/find_user answered HTTP 500 Internal Server Error: {page}"


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (httpx.Response(404, text="<html>no</html>"), NotAHordeApi, "404 Not Found without an AI Horde error"),
        (httpx.Response(200, text="<html>hi</html>", headers={"content-type": "text/html"}), NotAHordeApi, "text/html"),
        (httpx.Response(200, json={"unexpected": True}), NotAHordeApi, "unexpected shape"),
        (httpx.Response(502, text="Bad Gateway"), ServerUnreachable, "down or restarting"),
    ],
)
def test_answers_that_are_not_a_hordes_are_told_apart(answer: httpx.Response, kind: type, words: str) -> None:
    with client(lambda _r: answer) as horde, pytest.raises(kind) as caught:
        horde.find_user()
    assert words in str(caught.value)


def test_gets_are_retried_on_503_and_connection_errors() -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, headers={"retry-after": "0"})
        return httpx.Response(200, json={"username": "alice#1", "id": 1, "kudos": 5})

    with client(flaky) as horde:
        assert horde.find_user().kudos == 5
    assert calls == ["GET", "GET", "GET"]


def test_a_post_is_not_repeated_once_it_may_have_arrived() -> None:
    calls: list[str] = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, json={"message": "Busy", "rc": "Busy"})

    with client(busy) as horde, pytest.raises(ApiError):
        horde.transfer("bob#2", 5)
    assert calls == ["POST"]


def test_giving_up_on_an_unreachable_server_names_it() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with client(down) as horde, pytest.raises(ServerUnreachable) as caught:
        horde.models()
    assert str(caught.value) == (
        "Cannot reach http://horde.test ([Errno 111] Connection refused); is the server running?"
    )


def test_the_api_key_goes_to_the_api_only() -> None:
    seen: dict[str, str | None] = {}

    def record(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("apikey")
        assert request.headers["Client-Agent"].startswith("openhorde-cli:")
        if request.url.host == "images.test":
            return httpx.Response(200, content=b"RIFF")
        return httpx.Response(200, json=[])

    with client(record) as horde:
        horde.workers()
        assert horde.download("https://images.test/a.webp?signature=x") == b"RIFF"
    assert seen == {"horde.test": "secret-key", "images.test": None}


def test_a_failed_download_is_an_api_error_without_the_signature() -> None:
    with client(lambda _r: httpx.Response(403)) as horde, pytest.raises(ApiError) as caught:
        horde.download("https://images.test/a.webp?signature=secret")
    assert "signature" not in str(caught.value) and "HTTP 403" in str(caught.value)


def test_wait_reports_each_check_and_returns_when_done() -> None:
    answers = iter([CHECK, {**CHECK, "processing": 1, "waiting": 0}, {**CHECK, "done": True, "finished": 1}])
    seen: list[int] = []
    with client(lambda _r: httpx.Response(200, json=next(answers))) as horde:
        final = horde.wait("abc", poll_interval=0, on_progress=lambda p: seen.append(p.processing))
    assert final.done and final.finished == 1 and seen == [0, 1, 0]


def test_wait_gives_up_after_its_timeout() -> None:
    with client(lambda _r: httpx.Response(200, json=CHECK)) as horde, pytest.raises(RequestTimedOut):
        horde.wait("abc", poll_interval=0.01, timeout=0.05)


def test_every_client_error_reads_as_message_and_rc() -> None:
    assert str(ClientError("Nope", rc="NotAllowed")) == "Nope (NotAllowed)"
    assert str(ClientError("Nope")) == "Nope"
