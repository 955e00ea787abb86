"""The queue: image requests (``requests``), their model and worker lists, and their jobs.

A request asks for ``n_total`` images. ``n_waiting`` of them have not been handed to a
worker yet; each hand-out creates a ``jobs`` row holding a lease (``deadline_at``).
``queue_rank`` is fixed at creation as ``priority - AGEING_PER_SECOND × created_at`` so that
ordering by it equals ordering by "priority plus ageing" without rewriting rows as they age.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base, partial_index


class Request(Base):
    """One client request for ``n_total`` images with the same settings."""

    __tablename__ = "requests"
    __table_args__ = (
        # The pop query walks this index from the top: it matches its WHERE and ORDER BY.
        partial_index(
            "ix_requests_queue",
            text("queue_rank DESC"),
            "id",
            where="state = 'queued' AND n_waiting > 0",
        ),
        # A user's queued requests, best first: the pop's look for the owner's own requests reads one entry.
        partial_index(
            "ix_requests_user_queued",
            "user_id",
            text("queue_rank DESC"),
            "id",
            where="state = 'queued'",
        ),
        # Requests that accept any model, in pop order: one of the walks of a pop (see RequestModel).
        partial_index(
            "ix_requests_queue_any_model",
            text("queue_rank DESC"),
            "id",
            where="state = 'queued' AND n_waiting > 0 AND has_model_list IS false",
        ),
        Index("ix_requests_last_activity_at", "last_activity_at"),
        # The free tier's per-IP queue limit counts one address's queued requests with it.
        partial_index(
            "ix_requests_client_ip_queued",
            "client_ip_hash",
            where="state = 'queued'",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[float] = mapped_column(Float)
    last_activity_at: Mapped[float] = mapped_column(Float)
    queue_rank: Mapped[float] = mapped_column(Float)
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_total: Mapped[int] = mapped_column(Integer)
    n_waiting: Mapped[int] = mapped_column(Integer)
    n_processing: Mapped[int] = mapped_column(Integer, default=0)
    n_finished: Mapped[int] = mapped_column(Integer, default=0)
    n_faulted: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    pixels: Mapped[int] = mapped_column(BigInteger)
    accurate_steps: Mapped[int] = mapped_column(Integer)
    things: Mapped[int] = mapped_column(BigInteger)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    censor_nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    trusted_workers: Mapped[bool] = mapped_column(Boolean, default=False)
    slow_workers: Mapped[bool] = mapped_column(Boolean, default=True)
    worker_blacklist: Mapped[bool] = mapped_column(Boolean, default=False)
    has_worker_list: Mapped[bool] = mapped_column(Boolean, default=False)
    has_model_list: Mapped[bool] = mapped_column(Boolean, default=True)
    r2: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    source_processing: Mapped[str] = mapped_column(String(16), default="img2img")
    source_image_key: Mapped[str | None] = mapped_column(String(200), default=None)
    source_mask_key: Mapped[str | None] = mapped_column(String(200), default=None)
    has_loras: Mapped[bool] = mapped_column(Boolean, default=False)
    # A server default, as post_processor_bits: inserts written for older revisions leave it out.
    has_hypernetworks: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """The request names hypernetworks (an OpenHorde extension): only workers that allow them serve it."""
    has_post_processing: Mapped[bool] = mapped_column(Boolean, default=False)
    # A server default, not a Python one: inserts written for older revisions (the migration tests) leave it out.
    post_processor_bits: Mapped[int] = mapped_column(Integer, server_default="0")
    """One bit per requested post-processor (``domain/post_processors.py``), for matching by name."""
    has_controlnet: Mapped[bool] = mapped_column(Boolean, default=False)
    kudos_backed: Mapped[bool] = mapped_column(Boolean, default=False)
    disable_batching: Mapped[bool] = mapped_column(Boolean, default=False)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    charge_cents: Mapped[int] = mapped_column(BigInteger)
    charged_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    seed: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seed_variation: Mapped[int] = mapped_column(Integer, default=1)
    webhook: Mapped[str | None] = mapped_column(String(1024), default=None)
    client_agent: Mapped[str] = mapped_column(String(1000), default="unknown:0:unknown")
    fault_reason: Mapped[str | None] = mapped_column(Text, default=None)
    gallery: Mapped[bool] = mapped_column(Boolean, default=False)
    """Keep each finished image in the requester's gallery (an OpenHorde extension; registered users only)."""
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    """A keyed hash (HMAC with the server secret) of the caller's address; never the address itself."""
    sharedkey_id: Mapped[str | None] = mapped_column(String(36), default=None)
    """The shared key (``shared_keys.id``) the request was made with, if any; its charges count against the key.
    No foreign key: deleting a key stops new requests but leaves queued ones (still paid by the owner)."""


class RequestModel(Base):
    """One model a queued request accepts; a request with none accepts any model.

    These rows are the per-model queues: with the request's ``queue_rank`` copied in, a pop walks
    each of its worker's models in rank order (``ix_request_models_queue``) and stops at the first
    match, so a pop whose models have nothing queued reads nothing. Only rows with images waiting
    are in that index (``waiting``, kept equal to ``n_waiting > 0`` by the queue's queries), so a
    walk does not step over requests whose every image is being generated; and the rows are
    deleted when the request ends (``repositories/queue.py``, ``repositories/deliveries.py``).
    """

    __tablename__ = "request_models"
    __table_args__ = (
        partial_index(
            "ix_request_models_queue",
            "model",
            text("queue_rank DESC"),
            "request_id",
            where="waiting",
        ),
    )

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue_rank: Mapped[float] = mapped_column(Float, server_default="0")
    waiting: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class RequestWorker(Base):
    """One worker on a request's allow-list (or block-list when ``worker_blacklist``)."""

    __tablename__ = "request_workers"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Job(Base):
    """One image of a request handed to one worker, with its lease and its result."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_request_id", "request_id"),
        partial_index(
            "ix_jobs_processing_deadline",
            "deadline_at",
            where="state = 'processing'",
        ),
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), default=None)
    worker_name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="processing")
    started_at: Mapped[float] = mapped_column(Float)
    deadline_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, default=None)
    censored: Mapped[bool] = mapped_column(Boolean, default=False)
    gen_metadata: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    image_key: Mapped[str | None] = mapped_column(String(200), default=None)
    reward_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    fault_reason: Mapped[str | None] = mapped_column(Text, default=None)
