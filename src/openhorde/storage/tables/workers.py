"""The ``workers`` table and the models each worker serves."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class Worker(Base):
    """A worker as last checked in by its pop, with its capabilities and counters."""

    __tablename__ = "workers"
    # Names are unique regardless of case ("Alice-GPU" and "alice-gpu" cannot both exist); migration 0012.
    __table_args__ = (Index("ix_workers_name_lower", text("lower(name)"), unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    worker_type: Mapped[str] = mapped_column(String(16), default="image")
    """``image`` or ``interrogation`` (an alchemist), fixed by the worker's first pop (migration 0015)."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    info: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[float] = mapped_column(Float)
    last_check_in_at: Mapped[float] = mapped_column(Float)
    ipaddr: Mapped[str | None] = mapped_column(String(64), default=None)
    bridge_agent: Mapped[str] = mapped_column(String(1000), default="unknown:0:unknown")
    threads: Mapped[int] = mapped_column(Integer, default=1)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    max_pixels: Mapped[int] = mapped_column(BigInteger, default=512 * 512)
    allow_img2img: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_painting: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_post_processing: Mapped[bool] = mapped_column(Boolean, default=True)
    allow_controlnet: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_sdxl_controlnet: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_lora: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_hypernetworks: Mapped[bool] = mapped_column(Boolean, default=False)
    """The worker applies hypernetworks (an OpenHorde extension of the pop)."""
    allow_unsafe_ipaddr: Mapped[bool] = mapped_column(Boolean, default=True)
    can_censor_nsfw: Mapped[bool] = mapped_column(Boolean, default=True)
    limit_max_steps: Mapped[bool] = mapped_column(Boolean, default=False)
    extra_slow_worker: Mapped[bool] = mapped_column(Boolean, default=False)
    require_upfront_kudos: Mapped[bool] = mapped_column(Boolean, default=False)
    blacklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority_user_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    capabilities_hash: Mapped[str] = mapped_column(String(64), default="")
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    maintenance_msg: Mapped[str | None] = mapped_column(Text, default=None)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    kudos_generated_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    kudos_uptime_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    fulfilments: Mapped[int] = mapped_column(Integer, default=0)
    megapixelsteps: Mapped[float] = mapped_column(Float, default=0.0)
    aborted_jobs: Mapped[int] = mapped_column(Integer, default=0)
    uncompleted_jobs: Mapped[int] = mapped_column(Integer, default=0)
    aborts_in_window: Mapped[int] = mapped_column(Integer, default=0)
    """Aborted jobs since ``abort_window_started_at`` (the automatic maintenance counts these)."""
    abort_window_started_at: Mapped[float] = mapped_column(Float, default=0.0)
    uptime_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    speed_pps: Mapped[float | None] = mapped_column(Float, default=None)
    post_processors: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The post-processors an image worker says it has (an OpenHorde extension; empty: not said)."""
    forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The forms an alchemist offers."""
    max_tiles: Mapped[int] = mapped_column(Integer, default=16)
    """The largest image, in 512×512 tiles, an alchemist post-processes."""
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The models served, also in ``worker_models`` (one row each) for SQL matching."""
    team_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    """The team (``teams.id``) this worker works for, if any. No foreign key: SQLite cannot add one to an
    existing table, so deleting a team clears this column itself (``domain/teams.py``)."""


class WorkerModel(Base):
    """One model name a worker serves."""

    __tablename__ = "worker_models"
    __table_args__ = (Index("ix_worker_models_model", "model"),)

    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
