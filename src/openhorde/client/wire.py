"""What the client reads from an AI Horde v2 API: the few fields it uses, parsed leniently.

OpenHorde and the public AI Horde send the same field names, but either may add fields or leave optional
ones out; a missing counter reads as 0 and a missing text as "", so a newer server never breaks this client.
An answer of the wrong shape altogether (not an object, a counter that is not a number) raises ``WireError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class WireError(ValueError):
    """An answer that is not shaped like the AI Horde API's."""


def as_object(data: Any, what: str) -> Mapping[str, Any]:
    """``data`` as a JSON object, or ``WireError`` naming ``what`` was expected."""
    if not isinstance(data, Mapping):
        raise WireError(f"expected {what} as a JSON object, got {type(data).__name__}")
    return data


def as_list(data: Any, what: str) -> list[Any]:
    """``data`` as a JSON array, or ``WireError``."""
    if not isinstance(data, list):
        raise WireError(f"expected a JSON array of {what}, got {type(data).__name__}")
    return data


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise WireError(f"'{key}' is not a number: {value!r}")
    try:
        return float(value)
    except ValueError as exc:
        raise WireError(f"'{key}' is not a number: {value!r}") from exc


def _int(data: Mapping[str, Any], key: str) -> int:
    return int(_number(data, key))


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _flag(data: Mapping[str, Any], key: str) -> bool:
    return bool(data.get(key, False))


@dataclass(frozen=True)
class QueuedRequest:
    """The answer of ``POST /generate/async``: the request id, its price and any warnings."""

    id: str
    kudos: float
    message: str = ""
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: Any) -> QueuedRequest:
        """Parse the JSON answer."""
        body = as_object(data, "a queued request")
        if not _text(body, "id"):
            raise WireError("the answer has no request 'id'")
        warnings = tuple(
            f"{_text(w, 'message')} ({_text(w, 'code')})"
            for w in as_list(body.get("warnings") or [], "warnings")
            if isinstance(w, Mapping)
        )
        return cls(_text(body, "id"), _number(body, "kudos"), _text(body, "message"), warnings)


@dataclass(frozen=True)
class Progress:
    """``GET /generate/check/{id}``: how far a request is; ``wait_time`` in seconds."""

    finished: int
    processing: int
    restarted: int
    waiting: int
    done: bool
    faulted: bool
    wait_time: int
    queue_position: int
    kudos: float
    is_possible: bool
    fault_reason: str = ""
    """Not an AI Horde field; read when a server sends it, to say why a request faulted."""

    @classmethod
    def from_wire(cls, data: Any) -> Progress:
        """Parse the JSON answer."""
        return cls(**_progress_fields(as_object(data, "a request status")))


def _progress_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    if "done" not in body:
        raise WireError("the status has no 'done' field")
    return {
        "finished": _int(body, "finished"),
        "processing": _int(body, "processing"),
        "restarted": _int(body, "restarted"),
        "waiting": _int(body, "waiting"),
        "done": _flag(body, "done"),
        "faulted": _flag(body, "faulted"),
        "wait_time": _int(body, "wait_time"),
        "queue_position": _int(body, "queue_position"),
        "kudos": _number(body, "kudos"),
        "is_possible": bool(body.get("is_possible", True)),
        "fault_reason": _text(body, "fault_reason"),
    }


@dataclass(frozen=True)
class Generation:
    """One delivered image: ``img`` is a download URL (``r2``) or the base64 WebP itself."""

    id: str
    img: str
    seed: str
    model: str
    worker_id: str
    worker_name: str
    censored: bool
    gen_metadata: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_wire(cls, data: Any) -> Generation:
        """Parse one item of ``generations``."""
        body = as_object(data, "a generation")
        metadata = tuple(m for m in as_list(body.get("gen_metadata") or [], "gen_metadata") if isinstance(m, Mapping))
        return cls(
            id=_text(body, "id"),
            img=_text(body, "img"),
            seed=_text(body, "seed"),
            model=_text(body, "model"),
            worker_id=_text(body, "worker_id"),
            worker_name=_text(body, "worker_name"),
            # The AI Horde always marshals ``state`` as "ok"; ``censored`` is the field that tells.
            censored=_flag(body, "censored") or body.get("state") == "censored",
            gen_metadata=metadata,
        )


@dataclass(frozen=True)
class RequestStatus(Progress):
    """``GET /generate/status/{id}``: the progress and the images delivered so far."""

    generations: tuple[Generation, ...] = field(default=())

    @classmethod
    def from_wire(cls, data: Any) -> RequestStatus:
        """Parse the JSON answer."""
        body = as_object(data, "a request status")
        generations = tuple(Generation.from_wire(g) for g in as_list(body.get("generations") or [], "generations"))
        return cls(**_progress_fields(body), generations=generations)


@dataclass(frozen=True)
class ModelStatus:
    """One model of ``GET /status/models``: live workers, queued megapixelsteps and jobs, ETA in seconds."""

    name: str
    count: int
    queued: float
    jobs: float
    eta: int
    performance: float

    @classmethod
    def from_wire(cls, data: Any) -> ModelStatus:
        """Parse one item."""
        body = as_object(data, "a model")
        return cls(
            name=_text(body, "name"),
            count=_int(body, "count"),
            queued=_number(body, "queued"),
            jobs=_number(body, "jobs"),
            eta=_int(body, "eta"),
            performance=_number(body, "performance"),
        )


@dataclass(frozen=True)
class WorkerInfo:
    """One worker of ``GET /workers`` (``performance`` is the server's text, e.g. "1.2 megapixelsteps per second")."""

    name: str
    id: str
    online: bool
    models: tuple[str, ...]
    kudos_rewards: float
    performance: str
    maintenance_mode: bool
    threads: int
    requests_fulfilled: int
    uptime: int

    @classmethod
    def from_wire(cls, data: Any) -> WorkerInfo:
        """Parse one item."""
        body = as_object(data, "a worker")
        return cls(
            name=_text(body, "name"),
            id=_text(body, "id"),
            online=_flag(body, "online"),
            models=tuple(str(m) for m in as_list(body.get("models") or [], "models")),
            kudos_rewards=_number(body, "kudos_rewards"),
            performance=_text(body, "performance"),
            maintenance_mode=_flag(body, "maintenance_mode"),
            threads=_int(body, "threads"),
            requests_fulfilled=_int(body, "requests_fulfilled"),
            uptime=_int(body, "uptime"),
        )


@dataclass(frozen=True)
class UserInfo:
    """The account of an API key (``GET /find_user``): ``username`` is ``name#id``."""

    username: str
    id: int
    kudos: float

    @classmethod
    def from_wire(cls, data: Any) -> UserInfo:
        """Parse the JSON answer."""
        body = as_object(data, "a user")
        if not _text(body, "username"):
            raise WireError("the answer has no 'username'")
        return cls(username=_text(body, "username"), id=_int(body, "id"), kudos=_number(body, "kudos"))


INTERROGATION_ENDED = frozenset({"done", "faulted", "partial", "cancelled"})
"""Interrogation states after which nothing more happens (the others are ``waiting`` and ``processing``)."""


@dataclass(frozen=True)
class InterrogationForm:
    """One form of an interrogation: its name, state, and once done its ``result`` (``{form name: value}``)."""

    form: str
    state: str
    result: Mapping[str, Any] | None = None

    @classmethod
    def from_wire(cls, data: Any) -> InterrogationForm:
        """Parse one item of ``forms``."""
        body = as_object(data, "an interrogation form")
        result = body.get("result")
        return cls(_text(body, "form"), _text(body, "state"), as_object(result, "a result") if result else None)


@dataclass(frozen=True)
class InterrogationStatus:
    """``GET /interrogate/status/{id}``: the interrogation's state and its forms'."""

    state: str
    forms: tuple[InterrogationForm, ...]

    @property
    def done(self) -> bool:
        """Whether the interrogation has ended (done, faulted, cancelled, or partly each)."""
        return self.state in INTERROGATION_ENDED

    @classmethod
    def from_wire(cls, data: Any) -> InterrogationStatus:
        """Parse the JSON answer."""
        body = as_object(data, "an interrogation status")
        if not _text(body, "state"):
            raise WireError("the interrogation status has no 'state'")
        forms = tuple(InterrogationForm.from_wire(f) for f in as_list(body.get("forms") or [], "forms"))
        return cls(_text(body, "state"), forms)
