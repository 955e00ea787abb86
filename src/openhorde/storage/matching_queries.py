"""Named queries of matching: which queued request a worker can serve, and which workers could serve a request.

The rules are written once, in ``match_rules``, against a ``WorkerSide`` whose values are
either a popping worker's declared capabilities (plain Python values, folded away when they
allow everything) or the columns of the ``workers`` table (to ask "could any live worker
serve this request?"). A popping worker's statement is built once per shape of its flags,
with its values bound as parameters, because building the expression costs more than
running it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import BindParameter, True_
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.sql.util import ClauseAdapter

from openhorde.storage.tables import Request, RequestModel, RequestWorker, Worker

FAST_WORKER_PIXELSTEPS_PER_SECOND = 500_000
"""Workers slower than this serve only requests that allow slow workers."""
LIMITED_MAX_STEPS = 40
"""Workers that set ``limit_max_steps`` get no request with more accurate steps than this."""
ONE: ColumnElement[int] = literal_column("1")
"""``LIMIT 1`` as a literal: a cached (generic) plan of a prepared statement then knows it needs one row and
keeps walking the index, instead of planning for an unknown limit."""
SKIPPED_SAMPLE_SIZE = 200
"""The "why nothing matched" counts look only at this many requests at the head of the queue."""


def queued_condition() -> ColumnElement[bool]:
    """A request with images still to hand out (the partial queue indexes' predicate).

    Written with literal constants, not bound parameters: PostgreSQL can then prove that a
    cached (generic) plan of a prepared statement may use the partial queue indexes, and stops
    planning the pop query afresh on every call."""
    return and_(Request.state == literal_column("'queued'"), Request.n_waiting > literal_column("0"))


Flag = bool | ColumnElement[bool] | InstrumentedAttribute[bool]


@dataclass(frozen=True)
class WorkerSide:
    """What a worker can do: plain values for a popping worker, or ``workers`` columns."""

    worker_id: Any
    owner_id: Any
    max_pixels: Any
    nsfw: Flag
    allow_img2img: Flag
    allow_painting: Flag
    allow_post_processing: Flag
    allow_controlnet: Flag
    allow_lora: Flag
    can_censor_nsfw: Flag
    owner_trusted: Flag
    fast: Flag
    limit_max_steps: Flag
    require_upfront_kudos: Flag
    maintenance: Flag
    allow_hypernetworks: Flag = False
    """Hypernetworks, an OpenHorde extension (so a default: AI Horde workers never declare them)."""
    models: Sequence[str] | Sequence[BindParameter[Any]] | None = None
    """The models a popping worker serves; None for ``workers`` rows (their models are in ``worker_models``)."""
    blacklist: Sequence[str] | Sequence[BindParameter[Any]] = ()
    priority_user_ids: Sequence[int] | BindParameter[Any] = ()
    prioritised: Any = None
    """For ``workers`` rows: a condition that the request's user is one of the row's priority users."""
    blacklisted: Any = None
    """For ``workers`` rows: a condition that the request's prompt holds a word of the row's blacklist."""
    refused_by_bridge: int | BindParameter[Any] = 0
    """Bits of the post-processors the worker's bridge cannot run (``domain/post_processors.py``); 0: none."""
    refused_by_worker: int | BindParameter[Any] = 0
    """Bits of the post-processors missing from the worker's own list; 0: none (or it sent no list)."""


def worker_columns() -> WorkerSide:
    """The matching view of any row of ``workers`` (used inside correlated subqueries)."""
    return WorkerSide(
        worker_id=Worker.id,
        owner_id=Worker.user_id,
        max_pixels=Worker.max_pixels,
        nsfw=Worker.nsfw,
        allow_img2img=Worker.allow_img2img,
        allow_painting=Worker.allow_painting,
        allow_post_processing=Worker.allow_post_processing,
        allow_controlnet=Worker.allow_controlnet,
        allow_lora=Worker.allow_lora,
        allow_hypernetworks=Worker.allow_hypernetworks,
        can_censor_nsfw=Worker.can_censor_nsfw,
        owner_trusted=false(),
        fast=func.coalesce(Worker.speed_pps, FAST_WORKER_PIXELSTEPS_PER_SECOND) >= FAST_WORKER_PIXELSTEPS_PER_SECOND,
        limit_max_steps=Worker.limit_max_steps,
        require_upfront_kudos=Worker.require_upfront_kudos,
        maintenance=Worker.maintenance,
    )


def _allowed(flag: Flag, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """``flag OR condition``, folded when ``flag`` is a plain bool."""
    if isinstance(flag, bool):
        return true() if flag else condition
    return or_(flag, condition)


def _forbidden(flag: Flag, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """``NOT flag OR condition``, folded when ``flag`` is a plain bool."""
    if isinstance(flag, bool):
        return condition if flag else true()
    return or_(not_(flag), condition)


def _no_bits(refused: int | BindParameter[Any]) -> ColumnElement[bool]:
    """The request asks for none of the ``refused`` post-processors; folded away when nothing is refused."""
    if isinstance(refused, int) and refused == 0:
        return true()
    return Request.post_processor_bits.op("&")(refused) == 0


def _in(values: Sequence[Any] | BindParameter[Any]) -> Any:
    """A list for ``IN``, or an expanding bound parameter as is."""
    return values if isinstance(values, BindParameter) else list(values)


def _has_priority_users(w: WorkerSide) -> bool:
    return isinstance(w.priority_user_ids, BindParameter) or bool(w.priority_user_ids)


def owner_or_priority(w: WorkerSide) -> ColumnElement[bool]:
    """The request belongs to the worker's owner or one of its priority users."""
    owner: ColumnElement[bool] = Request.user_id == w.owner_id
    if w.prioritised is not None:
        return or_(owner, w.prioritised)
    if _has_priority_users(w):
        return or_(owner, Request.user_id.in_(_in(w.priority_user_ids)))
    return owner


def _blacklisted(word: str | BindParameter[Any]) -> ColumnElement[bool]:
    if isinstance(word, BindParameter):
        return func.lower(Request.prompt).contains(word, escape="\\")
    return func.lower(Request.prompt).contains(word.lower(), autoescape=True)


def _models_condition(models: Sequence[str] | Sequence[BindParameter[Any]]) -> ColumnElement[bool]:
    # OFFSET 0 keeps this a correlated probe of request_models' primary key for each request the pop walks.
    # Without it PostgreSQL turns the EXISTS into a hashed subplan that first reads every request_models row
    # of the worker's models: 16 ms of a 17 ms pop at 100,000 queued, growing with the queue.
    named = (
        select(RequestModel.request_id)
        .where(RequestModel.request_id == Request.id, RequestModel.model.in_(list(models)))
        .offset(0)
        .exists()
    )
    return or_(Request.has_model_list.is_(False), named)


def _targeting_condition(w: WorkerSide) -> ColumnElement[bool]:
    listed = exists().where(RequestWorker.request_id == Request.id, RequestWorker.worker_id == w.worker_id)
    return or_(
        Request.has_worker_list.is_(False),
        and_(Request.worker_blacklist.is_(False), listed),
        and_(Request.worker_blacklist.is_(True), not_(listed)),
    )


def match_rules(w: WorkerSide) -> list[tuple[str, ColumnElement[bool]]]:
    """Every rule a queued request must pass to be served by worker ``w``, with its AI Horde skip reason."""
    owners = owner_or_priority(w)
    rules: list[tuple[str, ColumnElement[bool]]] = [
        ("max_pixels", Request.pixels <= w.max_pixels),
        ("nsfw", _allowed(w.nsfw, Request.nsfw.is_(False))),
        ("nsfw", _allowed(w.can_censor_nsfw, or_(Request.censor_nsfw.is_(False), Request.nsfw.is_(True)))),
        ("img2img", _allowed(w.allow_img2img, Request.source_image_key.is_(None))),
        (
            "painting",
            _allowed(
                w.allow_painting,
                or_(Request.source_image_key.is_(None), Request.source_processing == "img2img"),
            ),
        ),
        ("post-processing", _allowed(w.allow_post_processing, Request.has_post_processing.is_(False))),
        ("bridge_version", _no_bits(w.refused_by_bridge)),
        ("post-processing", _no_bits(w.refused_by_worker)),
        ("controlnet", _allowed(w.allow_controlnet, Request.has_controlnet.is_(False))),
        ("lora", _allowed(w.allow_lora, Request.has_loras.is_(False))),
        ("hypernetwork", _allowed(w.allow_hypernetworks, Request.has_hypernetworks.is_(False))),
        ("untrusted", _allowed(w.owner_trusted, Request.trusted_workers.is_(False))),
        ("performance", _allowed(w.fast, Request.slow_workers.is_(True))),
        ("step_count", _forbidden(w.limit_max_steps, Request.accurate_steps <= LIMITED_MAX_STEPS)),
        (
            "kudos",
            _forbidden(w.require_upfront_kudos, or_(Request.kudos_backed.is_(True), owners)),
        ),
        ("worker_id", _forbidden(w.maintenance, Request.user_id == w.owner_id)),
        ("worker_id", _targeting_condition(w)),
    ]
    if w.models is not None:  # ``workers`` rows: their models are matched through ``worker_models`` by the caller
        rules.insert(1, ("models", _models_condition(w.models)))
    for word in w.blacklist:
        rules.append(("blacklist", not_(_blacklisted(word))))
    if w.blacklisted is not None:
        rules.append(("blacklist", not_(w.blacklisted)))
    return [(reason, condition) for reason, condition in rules if not isinstance(condition, True_)]


def match_conditions(w: WorkerSide, *, models: bool = True) -> list[ColumnElement[bool]]:
    """The conditions of ``match_rules`` alone; without the models rule when the query already decides it."""
    return [condition for reason, condition in match_rules(w) if models or reason != "models"]


def walk_model_queues(w: WorkerSide, lock: bool) -> ScalarSelect[Any]:
    """The id of the best request for ``w``: the best of one walk per model it serves, plus one walk of the requests
    that accept any model.

    Each walk reads one index in rank order (``ix_request_models_queue`` for a model,
    ``ix_requests_queue_any_model`` for the rest) and stops at its first match, so the cost
    follows the worker's own models, not the length of the whole queue: a worker whose models
    have nothing queued reads nothing. On PostgreSQL each walk locks its match (``SKIP LOCKED``);
    the unused ones are released when the pop's transaction ends a few milliseconds later.
    """
    conditions = [queued_condition(), *match_conditions(w, models=False)]
    walks = [
        select(Request.id, Request.queue_rank)
        .where(Request.has_model_list.is_(False), *conditions)
        .order_by(Request.queue_rank.desc(), Request.id)
        .limit(ONE)
    ]
    for model in w.models or ():
        walks.append(
            select(Request.id, Request.queue_rank)
            .join(RequestModel, RequestModel.request_id == Request.id)
            .where(RequestModel.model == model, RequestModel.waiting, *conditions)
            .order_by(RequestModel.queue_rank.desc(), RequestModel.request_id)
            .limit(ONE)
        )
    if lock:
        walks = [walk.with_for_update(skip_locked=True, of=Request) for walk in walks]
    subqueries = [walk.subquery() for walk in walks]
    best = union_all(*(select(sub.c.id, sub.c.queue_rank) for sub in subqueries)).subquery()
    return select(best.c.id).order_by(best.c.queue_rank.desc(), best.c.id).limit(ONE).scalar_subquery()


_FLAG_FIELDS = (
    "nsfw",
    "allow_img2img",
    "allow_painting",
    "allow_post_processing",
    "allow_controlnet",
    "allow_lora",
    "allow_hypernetworks",
    "can_censor_nsfw",
    "owner_trusted",
    "fast",
    "limit_max_steps",
    "require_upfront_kudos",
    "maintenance",
)


def _escape_like(word: str) -> str:
    return word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def shape_and_params(w: WorkerSide) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """What decides a popping worker's query text (its flags, how many words), and its bound values."""
    flags = tuple(bool(getattr(w, name)) for name in _FLAG_FIELDS)
    params: dict[str, Any] = {
        "worker_id": w.worker_id,
        "owner_id": w.owner_id,
        "max_pixels": w.max_pixels,
        **{f"model_{index}": model for index, model in enumerate(w.models or ())},
        "priority_ids": list(w.priority_user_ids or ()),
    }
    for name in ("refused_by_bridge", "refused_by_worker"):
        if getattr(w, name):
            params[name] = getattr(w, name)
    for index, word in enumerate(w.blacklist):
        params[f"word_{index}"] = _escape_like(str(word))
    refusals = (bool(w.refused_by_bridge), bool(w.refused_by_worker))
    return (flags, len(w.blacklist), _has_priority_users(w), len(w.models or ()), refusals), params


def template(shape: tuple[Any, ...]) -> WorkerSide:
    """A worker side with the given flags and bound parameters for every value."""
    flags, words, has_priority, models, (by_bridge, by_worker) = shape
    return WorkerSide(
        worker_id=bindparam("worker_id"),
        owner_id=bindparam("owner_id"),
        max_pixels=bindparam("max_pixels"),
        models=[bindparam(f"model_{index}") for index in range(models)],
        blacklist=[bindparam(f"word_{index}") for index in range(words)],
        priority_user_ids=bindparam("priority_ids", expanding=True) if has_priority else (),
        refused_by_bridge=bindparam("refused_by_bridge", type_=Integer) if by_bridge else 0,
        refused_by_worker=bindparam("refused_by_worker", type_=Integer) if by_worker else 0,
        **dict(zip(_FLAG_FIELDS, flags, strict=True)),
    )


@lru_cache(maxsize=512)
def _cached_skipped(shape: tuple[Any, ...]) -> tuple[tuple[str, ...], Select[Any]]:
    head = (
        select(Request)
        .where(queued_condition())
        .order_by(Request.queue_rank.desc(), Request.id)
        .limit(SKIPPED_SAMPLE_SIZE)
        .subquery()
    )
    adapter = ClauseAdapter(head)
    side = template(shape)
    rules = match_rules(side)
    columns = [
        func.coalesce(func.sum(case((not_(adapter.traverse(condition)), 1), else_=0)), 0) for _, condition in rules
    ]
    # Whether a request would match if no other pop held it: the pop's own walk, without locks.
    contended = walk_model_queues(side, lock=False).is_not(None)
    return tuple(reason for reason, _ in rules), select(*columns, contended).select_from(head)


@dataclass(frozen=True)
class Skipped:
    """Why a pop found nothing: counts per AI Horde skip reason among the head of the queue, and whether a
    request it could serve was there after all, held by another pop's transaction (``SKIP LOCKED`` passed it)."""

    counts: dict[str, int]
    contended: bool


def skipped_query(w: WorkerSide) -> tuple[Select[Any], dict[str, Any], Callable[[Sequence[Any]], Skipped]]:
    """Why the requests at the head of the queue did not match ``w``, and whether one that did was locked: the
    statement, its values, and what makes a ``Skipped`` of its row."""
    shape, params = shape_and_params(w)
    reasons, statement = _cached_skipped(shape)

    def skipped(row: Sequence[Any]) -> Skipped:
        counts: dict[str, int] = {}
        for reason, value in zip(reasons, row[:-1], strict=True):
            if value:
                counts[reason] = counts.get(reason, 0) + int(value)
        return Skipped(counts, bool(row[-1]))

    return statement, params, skipped
