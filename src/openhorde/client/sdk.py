"""A small synchronous client for any AI Horde v2-compatible server (OpenHorde or the public AI Horde).

Every failure surfaces as one of these, never as an ``httpx`` error:

    ClientError                  message, rc (the API's return code, if any), status_code (HTTP, if any)
    ├── ApiError                 the server answered with an error: its ``{"message", "rc"}``, or a clear
    │                            description of a non-JSON 4xx/5xx
    ├── ServerUnreachable        no connection, no answer in time, or a 502/503/504 from a proxy
    │   └── NotAHordeApi         something answered, but not like an AI Horde API (HTML, 404 without rc, …)
    └── RequestFaulted           the request ended without all its images
        ├── RequestCancelled     … because it was cancelled on the server
        └── RequestTimedOut      … because the caller stopped waiting

Idempotent calls (GET, and DELETE of a request, which may be repeated) are retried a couple of times with
exponential backoff on connection errors, timeouts, 429, 502, 503 and 504. POSTs are retried only when the
connection could not even be opened, since then nothing was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx

import openhorde
from openhorde.client.wire import (
    InterrogationStatus,
    ModelStatus,
    Progress,
    QueuedRequest,
    RequestStatus,
    UserInfo,
    WireError,
    WorkerInfo,
    as_list,
    as_object,
)

DEFAULT_URL = "http://127.0.0.1:7001"
ANONYMOUS_API_KEY = "0000000000"
DEFAULT_CLIENT_AGENT = f"openhorde-cli:{openhorde.__version__}:https://github.com/openhorde/openhorde"
"""``name:version:contact``, as the AI Horde asks clients to identify themselves."""
DEFAULT_TIMEOUT_SECONDS = 30.0
"""How long one HTTP call may take."""
CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRIES = 2
"""Retries of an idempotent call after the first try."""
RETRY_BACKOFF_SECONDS = 0.25
"""The first retry waits this long, each next one twice as long."""
MAX_RETRY_AFTER_SECONDS = 10.0
"""The longest ``Retry-After`` honoured; a longer one is the server's problem, not a reason to hang."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ERROR_TEXT = 200
"""How much of a non-JSON error body goes into a message."""

T = TypeVar("T")


class ClientError(Exception):
    """Talking to the horde failed; ``str()`` is ``message (rc)``, ready to show a person."""

    def __init__(
        self,
        message: str,
        *,
        rc: str | None = None,
        status_code: int | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rc = rc
        self.status_code = status_code
        self.details = dict(details or {})
        """Per-field reasons of a validation error (``errors`` of the answer)."""

    def __str__(self) -> str:
        text = self.message
        if self.rc:
            text += f" ({self.rc})"
        if self.details:
            text += ": " + "; ".join(f"{name}: {reason}" for name, reason in self.details.items())
        return text


class ApiError(ClientError):
    """The server refused the call."""


class ServerUnreachable(ClientError):
    """The server could not be reached, or did not answer in time."""


class NotAHordeApi(ServerUnreachable):
    """Something answered at the URL, but not like an AI Horde API."""


class RequestFaulted(ClientError):
    """The request ended without delivering all its images."""


class RequestCancelled(RequestFaulted):
    """The request was cancelled on the server before all its images were delivered."""


class RequestTimedOut(RequestFaulted):
    """The request was not finished when the caller's time ran out."""


def api_base(url: str) -> str:
    """The ``…/api/v2`` base of a horde URL given with or without ``/api`` or ``/api/v2``.

    ``ValueError`` when it is not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{url}' is not an http:// or https:// URL")
    path = parts.path.rstrip("/")
    for suffix in ("/api/v2", "/api"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}/api/v2"


class HordeClient:
    """One connection pool to one horde, used from one thread; close it (or use ``with``) when done."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str = ANONYMOUS_API_KEY,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        client_agent: str = DEFAULT_CLIENT_AGENT,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_seconds: float = RETRY_BACKOFF_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.strip().rstrip("/")
        self.api_url = api_base(url)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        # The key goes only to the API, never to image URLs, which may point at another host (the AI Horde's R2).
        self._auth = {"apikey": api_key}
        self._http = httpx.Client(
            headers={"Client-Agent": client_agent},
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
            transport=transport,
            follow_redirects=True,
        )

    def __enter__(self) -> HordeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- generation --------------------------------------------------------------------------

    def submit(self, body: Mapping[str, Any]) -> QueuedRequest:
        """Queue an image request (``POST /generate/async``); the answer carries its id."""
        return self._parse(QueuedRequest.from_wire, self._call("POST", "/generate/async", json=dict(body)))

    def check(self, request_id: str) -> Progress:
        """A request's progress without its images (cheap; poll this)."""
        return self._parse(Progress.from_wire, self._call("GET", f"/generate/check/{quote(request_id)}"))

    def status(self, request_id: str) -> RequestStatus:
        """A request's progress and the images delivered so far (rate-limited on the AI Horde; call it rarely)."""
        return self._parse(RequestStatus.from_wire, self._call("GET", f"/generate/status/{quote(request_id)}"))

    def cancel(self, request_id: str) -> RequestStatus:
        """Cancel a request: no more images are handed out; the answer lists those already delivered."""
        return self._parse(RequestStatus.from_wire, self._call("DELETE", f"/generate/status/{quote(request_id)}"))

    def wait(
        self,
        request_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Poll ``check`` until the request is done (finished, faulted or cancelled) and return its last progress.

        ``RequestTimedOut`` after ``timeout`` seconds; the request is left as it is (the caller may cancel it).
        """
        return _poll(lambda: self.check(request_id), f"Request {request_id}", poll_interval, timeout, on_progress)

    def download(self, url: str) -> bytes:
        """The bytes behind an image URL of a status answer (sent without the API key)."""
        response = self._send("GET", url, idempotent=True, api=False)
        if not response.is_success:
            raise ApiError(
                f"Downloading {_short(url)} failed with HTTP {response.status_code} {response.reason_phrase}",
                status_code=response.status_code,
            )
        return response.content

    # -- alchemy -----------------------------------------------------------------------------

    def interrogate(self, body: Mapping[str, Any]) -> str:
        """Queue an interrogation (``POST /interrogate/async``); returns its id."""
        data = self._call("POST", "/interrogate/async", json=dict(body))

        def parse(answer: Any) -> str:
            found = as_object(answer, "a queued interrogation").get("id")
            if not found:
                raise WireError("the answer has no interrogation 'id'")
            return str(found)

        return self._parse(parse, data)

    def interrogation_status(self, interrogation_id: str) -> InterrogationStatus:
        """An interrogation's state and its forms' results so far."""
        data = self._call("GET", f"/interrogate/status/{quote(interrogation_id)}")
        return self._parse(InterrogationStatus.from_wire, data)

    def cancel_interrogation(self, interrogation_id: str) -> InterrogationStatus:
        """Cancel an interrogation: forms not yet popped are dropped; the answer keeps those done."""
        data = self._call("DELETE", f"/interrogate/status/{quote(interrogation_id)}")
        return self._parse(InterrogationStatus.from_wire, data)

    def wait_interrogation(
        self,
        interrogation_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        on_progress: Callable[[InterrogationStatus], None] | None = None,
    ) -> InterrogationStatus:
        """Poll the status until the interrogation has ended; ``RequestTimedOut`` after ``timeout`` seconds."""
        return _poll(
            lambda: self.interrogation_status(interrogation_id),
            f"Interrogation {interrogation_id}",
            poll_interval,
            timeout,
            on_progress,
        )

    # -- horde and account -------------------------------------------------------------------

    def models(self) -> list[ModelStatus]:
        """The image models some worker serves, with their queues."""
        data = self._call("GET", "/status/models", params={"type": "image"})
        return self._parse(lambda d: [ModelStatus.from_wire(m) for m in as_list(d, "models")], data)

    def workers(self) -> list[WorkerInfo]:
        """The horde's image workers."""
        data = self._call("GET", "/workers", params={"type": "image"})
        return self._parse(lambda d: [WorkerInfo.from_wire(w) for w in as_list(d, "workers")], data)

    def find_user(self) -> UserInfo:
        """The account of this client's API key."""
        return self._parse(UserInfo.from_wire, self._call("GET", "/find_user"))

    def transfer(self, username: str, amount: int) -> int:
        """Give ``amount`` kudos to ``username`` (``name#id``); returns the amount the server says it moved."""
        data = self._call("POST", "/kudos/transfer", json={"username": username, "amount": amount})
        return self._parse(lambda d: int(as_object(d, "a transfer").get("transferred", amount)), data)

    # -- HTTP --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send an API call and return its JSON, or raise the ``ClientError`` its answer means."""
        response = self._send(method, self.api_url + path, idempotent=method in ("GET", "DELETE"), **kwargs)
        return self._decode(response)

    def _send(self, method: str, url: str, *, idempotent: bool, api: bool = True, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            last_try = attempt >= self.retries
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, url, headers=self._auth if api else None, **kwargs)
            except httpx.ConnectError as exc:  # nothing was sent: safe to retry whatever the method
                if last_try:
                    raise ServerUnreachable(
                        f"Cannot reach {self.url} ({_reason(exc)}); is the server running?"
                    ) from exc
            except httpx.TransportError as exc:
                if last_try or not idempotent:
                    raise ServerUnreachable(f"No answer from {self.url} ({_reason(exc)})") from exc
            if response is not None and (response.status_code not in RETRY_STATUSES or last_try or not idempotent):
                return response
            time.sleep(self._delay(attempt, response))
            attempt += 1

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        wanted = response.headers.get("retry-after", "") if response is not None else ""
        if wanted.replace(".", "", 1).isdigit():
            return min(float(wanted), MAX_RETRY_AFTER_SECONDS)
        return float(self.backoff_seconds * 2**attempt)

    def _decode(self, response: httpx.Response) -> Any:
        try:
            data: Any = response.json()
            is_json = True
        except ValueError:  # not JSON at all, or not text (a UnicodeDecodeError is a ValueError too)
            data, is_json = None, False
        code = response.status_code
        where = f"{response.request.method} {response.request.url.path}"
        if response.is_success:
            if not is_json:
                raise NotAHordeApi(
                    f"{where} answered HTTP {code} with {_content_kind(response)}, not JSON: "
                    f"is {self.url} an AI Horde API?",
                    status_code=code,
                )
            return data
        if isinstance(data, Mapping) and isinstance(data.get("message"), str):
            errors = data.get("errors")
            details = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else None
            rc = data.get("rc")
            raise ApiError(data["message"], rc=str(rc) if rc else None, status_code=code, details=details)
        summary = f"{where} answered HTTP {code} {response.reason_phrase}"
        if code in (502, 503, 504):
            raise ServerUnreachable(f"{summary}: the server is down or restarting", status_code=code)
        if code in (404, 405):
            raise NotAHordeApi(f"{summary} without an AI Horde error: is {self.url} an AI Horde API?", status_code=code)
        raise ApiError(f"{summary}: {_snippet(response)}", status_code=code)

    def _parse(self, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except WireError as exc:
            raise NotAHordeApi(f"{self.url} answered in an unexpected shape ({exc}): is it an AI Horde API?") from exc


def _reason(exc: httpx.TransportError) -> str:
    return str(exc) or type(exc).__name__


def _content_kind(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    return kind or "an untyped body"


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def _short(url: str) -> str:
    """A URL without its query (presigned URLs carry long signatures)."""
    return url.split("?", 1)[0]


class _Pollable(Protocol):
    @property
    def done(self) -> bool: ...


P = TypeVar("P", bound=_Pollable)


def _poll(
    read: Callable[[], P],
    what: str,
    poll_interval: float,
    timeout: float | None,
    on_progress: Callable[[P], None] | None,
) -> P:
    """Call ``read`` every ``poll_interval`` seconds until its answer is ``done``; ``RequestTimedOut`` (naming
    ``what``) after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        answer = read()
        if on_progress is not None:
            on_progress(answer)
        if answer.done:
            return answer
        pause = poll_interval
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimedOut(f"{what} was not finished after {timeout:g} s")
            pause = min(pause, left)
        time.sleep(pause)
