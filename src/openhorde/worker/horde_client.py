"""The worker's HTTP client for an AI Horde-compatible server: pop, source download, upload, submit.

Transient trouble (connection errors, timeouts, 5xx, 429) is retried here with exponential backoff and
jitter until the caller's deadline; refusals (4xx) are classified by their ``rc`` into the exceptions
below, so the runner never sees an ``httpx`` error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

import openhorde

log = logging.getLogger("openhorde.worker.client")

PROJECT_URL = "https://github.com/openhorde/openhorde"
BRIDGE_NAME = "OpenHorde Worker"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_DOWNLOAD_SECONDS = 30.0
"""How long a source image download may keep retrying."""
MAX_RETRY_AFTER_SECONDS = 60.0

FATAL_RCS = frozenset(
    {
        "InvalidAPIKey",
        "WrongCredentials",
        "AnonForbidden",
        "AnonForbiddenWorker",
        "DeletedUser",
        "TooManyWorkers",
        "TooManyWorkersTrusted",
        "BannedClientAgent",
        "UnexpectedModelName",
        "InvalidWorkerName",
    }
)
"""Refusals that no retry will change: the worker must stop and its owner fix the configuration."""
JOB_GONE_RCS = frozenset({"AbortedGen", "DuplicateGen", "InvalidJobID", "ProcGenNotFound"})
"""Submit refusals that mean the job is no longer ours to deliver."""
MAINTENANCE_RCS = frozenset({"WorkerMaintenance", "WorkerFlaggedMaintenance", "MaintenanceMode"})


def bridge_agent() -> str:
    """The ``name:version:url`` string identifying this worker software to the horde."""
    return f"{BRIDGE_NAME}:{openhorde.__version__}:{PROJECT_URL}"


class HordeClientError(Exception):
    """Talking to the horde failed."""

    retry_after: float | None = None
    """Seconds the horde asked us to wait (``Retry-After``), when it did."""


class HordeUnavailable(HordeClientError):
    """The horde could not be reached (connection error, timeout, 5xx) before the deadline."""


class HordeRefused(HordeClientError):
    """The horde answered with a 4xx error ``{message, rc}``."""

    def __init__(self, status: int, rc: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}, rc {rc})")
        self.status = status
        self.rc = rc
        self.message = message


class AuthenticationFailed(HordeRefused):
    """The horde refuses this worker's key, name or models: nothing will work until the owner fixes it."""


class WorkerInMaintenance(HordeRefused):
    """The horde put this worker (or itself) in maintenance mode: no jobs for now."""


class JobGone(HordeRefused):
    """The job was aborted, already submitted or is unknown: its result can be dropped."""


class SourceUnavailable(HordeClientError):
    """A source image or mask could not be downloaded or decoded from base64."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits ``base × 2^k`` seconds (capped), times 0.5–1."""

    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** min(attempt, 30))
        # Jitter keeps many workers that lost the server at the same moment from returning in lockstep.
        return float(ceiling * random.uniform(0.5, 1.0))


@dataclass
class PopRequest:
    """The body of ``POST /generate/pop`` (AI Horde field names, plus OpenHorde's ``can_censor_nsfw`` and
    ``post_processors``)."""

    name: str
    models: list[str]
    nsfw: bool = True
    blacklist: list[str] = field(default_factory=list)
    priority_usernames: list[str] = field(default_factory=list)
    threads: int = 1
    amount: int = 1
    max_pixels: int = 512 * 512
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_post_processing: bool = False
    post_processors: list[str] | None = None
    """The post-processors this worker has (an OpenHorde extension; other hordes ignore it)."""
    allow_controlnet: bool = False
    allow_lora: bool = False
    allow_hypernetworks: bool = False
    """Hypernetworks (an OpenHorde extension; other hordes ignore it)."""
    require_upfront_kudos: bool = False
    extra_slow_worker: bool = False
    limit_max_steps: bool = False
    can_censor_nsfw: bool = False
    bridge_agent: str = field(default_factory=bridge_agent)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body."""
        return asdict(self)


def decode_base64_image(text: str) -> bytes:
    """The bytes of a base64 image (a ``data:…;base64,`` prefix is allowed)."""
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SourceUnavailable(f"not a URL and not valid base64 ({exc})") from exc


class HordeClient:
    """One connection pool to one horde; every method is safe to call concurrently."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._api_headers = {"apikey": api_key}
        self._retry = retry or RetryPolicy()
        agent = bridge_agent()
        self._http = httpx.AsyncClient(
            headers={"Client-Agent": agent}, transport=transport, timeout=timeout, follow_redirects=True
        )

    async def __aenter__(self) -> HordeClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def pop(self, request: PopRequest) -> dict[str, Any]:
        """Ask for a job once (the runner backs off between tries); the answer has no ``id`` when there is none."""
        response = await self._send(
            "POST", f"{self.api_url}/generate/pop", deadline=None, api=True, json=request.to_wire()
        )
        body = self._json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, body)
        return body

    async def model_popularity(self) -> dict[str, int]:
        """Images requested per model on this horde: the past month's stats, else what its queue holds.

        Raises ``HordeUnavailable`` when neither answers (the worker then cannot pick its ``top N`` models).
        """
        stats = await self._send("GET", f"{self.api_url}/stats/img/models", deadline=None, api=False)
        month = self._json(stats).get("month") if stats.status_code < 400 else None
        if isinstance(month, dict) and any(isinstance(count, int) and count > 0 for count in month.values()):
            return {str(name): int(count) for name, count in month.items() if isinstance(count, int)}
        status = await self._send("GET", f"{self.api_url}/status/models?type=image", deadline=None, api=False)
        if status.status_code >= 400:
            raise HordeUnavailable(f"GET /status/models answered HTTP {status.status_code}")
        try:
            models = status.json()
        except ValueError as exc:
            raise HordeUnavailable(f"GET /status/models answered no JSON: {exc}") from exc
        return {
            str(model["name"]): int(model.get("jobs") or 0)
            for model in models
            if isinstance(model, dict) and isinstance(model.get("name"), str)
        }

    async def download_image(self, source: str, timeout_s: float = DEFAULT_DOWNLOAD_SECONDS) -> bytes:
        """The bytes of a source image given as an http(s) URL (downloaded, with retries) or as base64."""
        if not source.startswith(("http://", "https://")):
            return decode_base64_image(source)
        try:
            response = await self._send("GET", source, deadline=time.monotonic() + timeout_s, api=False)
        except HordeUnavailable as exc:
            raise SourceUnavailable(str(exc)) from exc
        except httpx.InvalidURL as exc:
            raise SourceUnavailable(f"invalid URL {_short(source)}: {exc}") from exc
        if response.status_code >= 400:
            raise SourceUnavailable(f"GET {_short(source)} answered HTTP {response.status_code}")
        return response.content

    async def upload(self, url: str, webp: bytes, deadline: float) -> None:
        """PUT the raw image bytes to a presigned URL (used as given; no API key, no content type added).

        Raises ``HordeRefused`` when the URL is refused (expired or invalid signature), ``HordeUnavailable``
        when the deadline (``time.monotonic()`` seconds) passed without success.
        """
        response = await self._send("PUT", url, deadline=deadline, api=False, content=webp)
        if response.status_code >= 400:
            raise _refusal(response.status_code, self._json(response))

    async def submit(
        self,
        job_id: str,
        *,
        state: str,
        seed: int,
        gen_metadata: Sequence[Mapping[str, str]] = (),
        generation: str = "R2",
        censored: bool = False,
        deadline: float,
    ) -> float:
        """Hand in one image (``generation="R2"`` after an upload, or base64 WebP); returns the reward in kudos.

        Retries until ``deadline`` (``time.monotonic()`` seconds); raises ``JobGone`` when the horde no longer
        wants this result, ``AuthenticationFailed`` on a fatal refusal, ``HordeRefused`` on any other.
        """
        body = {
            "id": job_id,
            "generation": generation,
            "state": state,
            "seed": seed,
            "censored": censored,
            "gen_metadata": list(gen_metadata),
        }
        response = await self._send("POST", f"{self.api_url}/generate/submit", deadline=deadline, api=True, json=body)
        answer = self._json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, answer, job=True)
        return float(answer.get("reward", 0.0))

    async def interrogation_pop(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Ask for alchemy forms once (``POST /interrogate/pop``); ``forms`` is empty when there are none."""
        response = await self._send("POST", f"{self.api_url}/interrogate/pop", deadline=None, api=True, json=body)
        answer = self._json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, answer)
        return answer

    async def interrogation_submit(
        self, form_id: str, *, result: Mapping[str, Any] | None, state: str, deadline: float
    ) -> float:
        """Hand in one form's result (``POST /interrogate/submit``); returns the reward in kudos.

        Raises ``JobGone`` when the horde no longer wants it, ``HordeRefused`` on any other refusal.
        """
        body = {"id": form_id, "result": dict(result) if result is not None else None, "state": state}
        response = await self._send(
            "POST", f"{self.api_url}/interrogate/submit", deadline=deadline, api=True, json=body
        )
        answer = self._json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, answer, job=True)
        return float(answer.get("reward", 0.0))

    async def _send(self, method: str, url: str, *, deadline: float | None, api: bool, **kwargs: Any) -> httpx.Response:
        """One request, retried on transient trouble until ``deadline`` (``None``: a single try)."""
        attempt = 0
        while True:
            asked = None
            try:
                response = await self._http.request(method, url, headers=self._api_headers if api else None, **kwargs)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts, protocol errors
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                problem, asked = f"HTTP {response.status_code}", _retry_after(response)
            wait = asked or self._retry.delay(attempt)
            remaining = (deadline - time.monotonic()) if deadline is not None else 0.0
            if remaining <= 0:
                error = HordeUnavailable(f"{method} {_short(url)} failed: {problem}")
                error.retry_after = asked
                raise error
            log.warning(
                "%s %s failed (%s); retry %d in %.1f s",
                method,
                _short(url),
                problem,
                attempt + 1,
                min(wait, remaining),
                extra={"event_kind": "retry"},
            )
            await asyncio.sleep(min(wait, remaining))
            attempt += 1

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {"message": response.text[:200]}
        return body if isinstance(body, dict) else {"message": str(body)[:200]}


def _refusal(status: int, body: Mapping[str, Any], job: bool = False) -> HordeRefused:
    """The exception for a 4xx answer, chosen by its ``rc`` (and by 404 for job endpoints)."""
    rc = str(body.get("rc") or f"HTTP{status}")
    message = str(body.get("message") or "refused")
    if rc in FATAL_RCS or status == 401:
        return AuthenticationFailed(status, rc, message)
    if rc in MAINTENANCE_RCS:
        return WorkerInMaintenance(status, rc, message)
    if job and (rc in JOB_GONE_RCS or status == 404):
        return JobGone(status, rc, message)
    return HordeRefused(status, rc, message)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are rare enough to ignore)."""
    value = response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value else None
    except ValueError:
        return None


def _short(url: str) -> str:
    """A URL without its query string: presigned signatures do not belong in logs."""
    return url.split("?", 1)[0]
