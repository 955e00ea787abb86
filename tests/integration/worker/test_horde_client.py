"""The worker's HTTP client against scripted answers: retries, backoff, rc classification, raw uploads."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from openhorde.worker.horde_client import (
    AuthenticationFailed,
    HordeClient,
    HordeRefused,
    HordeUnavailable,
    JobGone,
    PopRequest,
    RetryPolicy,
    SourceUnavailable,
    WorkerInMaintenance,
)

API = "http://horde.test/api/v2"
FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.02)


class Script:
    """A transport answering from a list of responses, recording each request."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def client(script: Script) -> HordeClient:
    return HordeClient(API, "secret-key", retry=FAST, transport=httpx.MockTransport(script))


def refusal(status: int, rc: str) -> httpx.Response:
    return httpx.Response(status, json={"message": f"refused with {rc}", "rc": rc})


async def submit(script: Script, deadline_s: float = 5.0) -> float:
    async with client(script) as horde:
        return await horde.submit("job-1", state="ok", seed=3, deadline=time.monotonic() + deadline_s)


async def test_submit_retries_5xx_and_connection_errors_until_it_lands() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    script = Script(httpx.Response(502), reset, httpx.Response(503), httpx.Response(200, json={"reward": 9.5}))
    assert await submit(script) == 9.5
    assert len(script.requests) == 4
    body = script.requests[-1].read()
    assert b'"id":"job-1"' in body.replace(b" ", b"") and b'"generation":"R2"' in body.replace(b" ", b"")


async def test_429_retry_after_is_honoured() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "0.2"}), httpx.Response(200, json={"reward": 1}))
    started = time.monotonic()
    assert await submit(script) == 1.0
    assert time.monotonic() - started >= 0.2


async def test_submit_gives_up_when_the_lease_is_over() -> None:
    script = Script(httpx.Response(503))
    with pytest.raises(HordeUnavailable, match="HTTP 503"):
        await submit(script, deadline_s=0.1)
    assert len(script.requests) >= 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (refusal(400, "AbortedGen"), JobGone),
        (refusal(400, "DuplicateGen"), JobGone),
        (refusal(404, "InvalidJobID"), JobGone),
        (httpx.Response(404, text="not found"), JobGone),
        (refusal(401, "InvalidAPIKey"), AuthenticationFailed),
        (refusal(403, "WrongCredentials"), AuthenticationFailed),
        (refusal(400, "ImageValidationFailed"), HordeRefused),
    ],
)
async def test_submit_refusals_are_classified_by_rc(answer: httpx.Response, error: type[Exception]) -> None:
    script = Script(answer)
    with pytest.raises(error) as caught:
        await submit(script)
    assert type(caught.value) is error
    assert len(script.requests) == 1  # a refusal is never retried


async def test_pop_sends_the_key_agent_and_body_once() -> None:
    script = Script(httpx.Response(200, json={"payload": {}, "ids": [], "skipped": {}}))
    async with client(script) as horde:
        answer = await horde.pop(PopRequest(name="w", models=["m"], can_censor_nsfw=False))
    assert answer["ids"] == []
    [request] = script.requests
    assert str(request.url) == f"{API}/generate/pop"
    assert request.headers["apikey"] == "secret-key"
    assert request.headers["client-agent"].startswith("OpenHorde Worker:")
    assert b'"can_censor_nsfw":false' in request.read().replace(b" ", b"")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (refusal(403, "WorkerMaintenance"), WorkerInMaintenance),
        (refusal(403, "AnonForbiddenWorker"), AuthenticationFailed),
        (refusal(400, "UnexpectedModelName"), AuthenticationFailed),
        (httpx.Response(500), HordeUnavailable),
        (refusal(400, "SomethingElse"), HordeRefused),
    ],
)
async def test_pop_errors_are_raised_at_once(answer: httpx.Response, error: type[Exception]) -> None:
    script = Script(answer)
    async with client(script) as horde:
        with pytest.raises(error):
            await horde.pop(PopRequest(name="w", models=["m"]))
    assert len(script.requests) == 1  # the runner decides when to try again


async def test_pop_failure_carries_retry_after() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}))
    async with client(script) as horde:
        with pytest.raises(HordeUnavailable) as caught:
            await horde.pop(PopRequest(name="w", models=["m"]))
    assert caught.value.retry_after == 7.0


async def test_upload_puts_raw_bytes_to_the_url_as_given() -> None:
    url = "http://blobs.test/results/job-1.webp?expires=1&signature=a%2Fb%3D"
    script = Script(httpx.Response(200))
    async with client(script) as horde:
        await horde.upload(url, b"RIFF....WEBP", deadline=time.monotonic() + 5)
    [request] = script.requests
    assert request.method == "PUT" and str(request.url) == url
    assert request.read() == b"RIFF....WEBP"
    assert "content-type" not in request.headers and "apikey" not in request.headers


async def test_upload_refused_is_an_error_to_fall_back_from() -> None:
    script = Script(refusal(403, "InvalidUploadSignature"))
    async with client(script) as horde:
        with pytest.raises(HordeRefused):
            await horde.upload("http://blobs.test/x?signature=bad", b"img", deadline=time.monotonic() + 5)


async def test_download_image_from_url_or_base64() -> None:
    script = Script(httpx.Response(200, content=b"image-bytes"))
    async with client(script) as horde:
        assert await horde.download_image("https://blobs.test/src.webp") == b"image-bytes"
        assert await horde.download_image(base64.b64encode(b"inline").decode()) == b"inline"
        assert await horde.download_image("data:image/webp;base64," + base64.b64encode(b"x").decode()) == b"x"
    assert len(script.requests) == 1 and "apikey" not in script.requests[0].headers


@pytest.mark.parametrize("answer", [httpx.Response(404), httpx.Response(503)])
async def test_download_failures_are_source_unavailable(answer: httpx.Response) -> None:
    script = Script(answer)
    async with client(script) as horde:
        with pytest.raises(SourceUnavailable):
            await horde.download_image("https://blobs.test/src.webp", timeout_s=0.05)


def test_retry_delays_grow_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=8.0)
    delays: list[Any] = [[policy.delay(attempt) for _ in range(50)] for attempt in range(6)]
    for attempt, samples in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert all(ceiling / 2 <= delay <= ceiling for delay in samples)
    assert len(set(delays[2])) > 1


async def test_model_popularity_reads_the_month_stats_else_the_queue() -> None:
    stats = {"day": {"A": 1}, "month": {"A": 40, "B": 7}, "total": {"A": 900}}
    script = Script(httpx.Response(200, json=stats))
    async with client(script) as horde:
        assert await horde.model_popularity() == {"A": 40, "B": 7}
    assert [request.url.path for request in script.requests] == ["/api/v2/stats/img/models"]

    # A young horde has no stats yet: what its queue holds ranks the models instead.
    queue = [{"name": "A", "jobs": 3, "count": 1}, {"name": "B", "jobs": 9, "count": 2}]
    script = Script(httpx.Response(200, json={"day": {}, "month": {}, "total": {}}), httpx.Response(200, json=queue))
    async with client(script) as horde:
        assert await horde.model_popularity() == {"A": 3, "B": 9}
    assert script.requests[1].url.params["type"] == "image"

    script = Script(httpx.Response(404, json={"message": "no"}))
    async with client(script) as horde:
        with pytest.raises(HordeUnavailable, match="404"):
            await horde.model_popularity()
