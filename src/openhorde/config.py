"""The one settings object, with every default as a named constant.

Precedence: environment (``OPENHORDE_*``), then a ``.env`` file in the working directory,
then the defaults below. Settings are built once in an entry point and passed down
(``create_app(settings)``); nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7001
DEFAULT_DATA_DIR = Path("./horde-data")

DEFAULT_RESULT_RETENTION_SECONDS = 20 * 60
"""How long a request and its images stay retrievable after its last activity."""

DEFAULT_UPLOAD_URL_TTL_SECONDS = 30 * 60
"""Lifetime of a presigned upload or download URL."""

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest image a worker may upload, or a client may send as a source image."""

DEFAULT_MAX_SOURCE_PIXELS = 3072 * 3072
"""Largest source image (width × height) accepted; guards against decompression bombs."""

DEFAULT_WORKER_STALE_SECONDS = 300
"""A worker that has not popped for this long is offline."""

DEFAULT_CHECK_IN_DEBOUNCE_SECONDS = 30
"""A pop rewrites the worker row only when its capabilities changed or this long has passed."""

DEFAULT_MAINTENANCE_INTERVAL_SECONDS = 5.0
"""How often the server expires leases and removes old requests."""

DEFAULT_CHECK_CACHE_SECONDS = 10.0
"""How long a process may reuse a request's counters for ``/generate/check``; every change of the request, in any
server process, drops them at once, so this only bounds the cost of a change announcement lost on the way.
``0`` reads them on every check."""

DEFAULT_SOURCE_FETCH_TIMEOUT_SECONDS = 15.0
"""Total time a source image given as an http(s) URL may take to download: connecting, every redirect and
every byte together. A server dripping its answer slowly is cut off at this deadline."""

# Safety on the open internet: outbound fetches, request sizes, proxies.
DEFAULT_ALLOW_PRIVATE_ADDRESSES = False
"""Let source image URLs and webhooks reach loopback, private and link-local addresses. Off on a public horde:
on, anyone who can queue a request can make the server fetch from its own network."""
DEFAULT_MAX_REDIRECTS = 3
"""Redirects a source image download or a webhook delivery follows at most; every hop is checked."""
DEFAULT_TRUSTED_PROXIES = ""
"""Comma-separated addresses or networks (``10.0.0.0/8``) of reverse proxies whose ``X-Forwarded-For`` is
believed; empty: the header is ignored and the caller is the connecting address."""
DEFAULT_MAX_REQUEST_BODY_BYTES = None
"""Largest request body the server reads, in bytes; a larger one is refused with 413 before or while it arrives.
Unset: room for a source image and a mask of ``max_upload_bytes`` each, base64-encoded, plus 2 MiB for the rest
(28.7 MiB with the default ``max_upload_bytes``). Image uploads to ``/blobs`` keep their own limit,
``max_upload_bytes``."""
REQUEST_BODY_HEADROOM_BYTES = 2 * 1024 * 1024
"""Room for the rest of a request (prompt, parameters) beside its base64 images, in bytes."""

# Moderation: horde modes and prompt filters.
DEFAULT_MODES_CACHE_SECONDS = 2.0
"""How long a process reuses the horde modes (and the prompt filters' version) before reading them again;
the process that changes them sees the change at once."""

# Tiers and Stripe: the Supporter tier's boost and monthly grant, bought credits.
DEFAULT_SUPPORTER_PRIORITY_BOOST = 3000.0
"""Queue priority (in kudos) added to a supporter's requests: 3000 is worth 600 s of waiting."""

DEFAULT_SUPPORTER_MONTHLY_KUDOS = 1000
"""Kudos granted to a supporter once per calendar month (UTC) in which they are a supporter."""

# Rate limits and IP countermeasures. Limits read "N/unit[, N/unit...]" (units second, minute, hour, day; a
# window length may precede the unit: "5/10s"); "" means no limit. Numbers are the AI Horde's (reference §4.1)
# except where noted.
DEFAULT_RATE_LIMIT_DEFAULT = "90/minute"
"""Per IP, on every /api/v2 route without limits of its own (``/status/heartbeat`` is exempt)."""
DEFAULT_RATE_LIMIT_GENERATE_ASYNC = "90/minute, 2/second"
"""``POST /generate/async`` per IP."""
DEFAULT_RATE_LIMIT_GENERATE_ASYNC_KEY = "2/second"
"""``POST /generate/async`` per API key."""
DEFAULT_RATE_LIMIT_GENERATE_ASYNC_ANONYMOUS = "60/second"
"""``POST /generate/async`` for the shared anonymous key (all anonymous callers together)."""
DEFAULT_RATE_LIMIT_GENERATE_CHECK = "10/second"
"""``GET /generate/check/{id}`` per IP."""
DEFAULT_RATE_LIMIT_GENERATE_STATUS = "10/minute"
"""``GET /generate/status/{id}`` per IP."""
DEFAULT_RATE_LIMIT_JOB_TRAFFIC = "60/second"
"""``POST /generate/pop`` and ``/generate/submit`` per IP."""
DEFAULT_RATE_LIMIT_KUDOS_TRANSFER = "1/second, 90/hour"
"""``POST /kudos/transfer`` per API key."""
DEFAULT_RATE_LIMIT_REGISTER = "20/hour"
"""``POST /register`` per IP (ours: the AI Horde registers through its web site)."""
DEFAULT_RATE_LIMIT_USERS = "60/minute"
"""``GET`` and ``PUT /users/{id}`` per IP."""
DEFAULT_RATE_LIMIT_WORKER_MODIFY = "30/minute"
"""``PUT /workers/{id}`` per IP."""
DEFAULT_ANONYMOUS_IP_CONCURRENCY = 30
"""Images the anonymous key may have queued from one IP (ours; a registered user's default concurrency)."""
DEFAULT_REDIS_KEY_PREFIX = "openhorde:"

# Worker economy: uptime rewards, escrow of untrusted owners' rewards, automatic trust and automatic maintenance.
# Numbers are the AI Horde's (reference §3.3, §4.5) except where noted.
DEFAULT_UPTIME_REWARD_INTERVAL_SECONDS = 600
"""An online worker earns its uptime reward (50 + 2 per model, +30 with LoRA) once per this much uptime."""
DEFAULT_ESCROW_SHARE = 0.5
"""Share of an untrusted owner's image rewards held in escrow (``evaluating_kudos``) until trusted."""
DEFAULT_UPTIME_ESCROW_SHARE = 1.0
"""Share of an untrusted owner's uptime rewards held in escrow (the AI Horde holds all of them)."""
DEFAULT_TRUST_AFTER_KUDOS = 10_000.0
"""Kudos an untrusted owner must earn (images and uptime) before being trusted automatically (ours; the AI
Horde's ``KUDOS_TRUST_THRESHOLD`` is unset by default)."""
DEFAULT_TRUST_AFTER_IMAGES = 0
"""Images an untrusted owner's workers must deliver before automatic trust (ours; 0: no such condition)."""
DEFAULT_TRUST_MIN_ACCOUNT_AGE_SECONDS = 7 * 24 * 3600
"""Minimum account age for automatic trust."""
DEFAULT_WORKER_MAX_ABORTS_PER_HOUR = 20
"""A worker with more aborted (faulted or expired) jobs than this within an hour is put into maintenance."""

# Shared keys and teams. Numbers are the AI Horde's (reference §1.4).
DEFAULT_MAX_SHARED_KEYS = 3
"""Shared keys a user may have at once."""
DEFAULT_MAX_SHARED_KEYS_TRUSTED = 10
"""Shared keys a trusted user or a moderator may have at once (education accounts: 1000)."""

# Webhooks: signed deliveries from an outbox, retried with backoff.
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10.0
"""Time one webhook POST may take (connect to response) before it counts as failed."""
DEFAULT_WEBHOOK_MAX_ATTEMPTS = 8
"""Attempts per event before its delivery is marked failed."""
DEFAULT_WEBHOOK_BACKOFF_SECONDS = 10.0
"""Wait after the first failed attempt; it doubles after each further one (less up to half, at random)."""
DEFAULT_WEBHOOK_BACKOFF_MAX_SECONDS = 3600.0
"""Longest wait between two attempts."""
DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS = 1.0
"""How often each server process looks for due webhook deliveries."""

# Several servers, metrics, S3 blobs.
DEFAULT_BLOB_STORE: Literal["local", "s3"] = "local"
"""Where images live: "local" (the data directory, served by ``/blobs``) or "s3" (a bucket, presigned links)."""
DEFAULT_S3_ADDRESSING_STYLE: Literal["auto", "path", "virtual"] = "auto"
"""boto3's S3 addressing style: "path" suits MinIO and most self-hosted S3-compatible servers."""
DEFAULT_S3_PREFIX = ""
"""Prefix of every object key in the bucket (to share a bucket), e.g. "horde/"."""
DEFAULT_METRICS_ENABLED = True
"""Serve ``GET /metrics`` (Prometheus text format)."""

# Push instead of poll: request event streams and ``Prefer: wait``.
DEFAULT_PREFER_WAIT_MAX_SECONDS = 60
"""Longest ``Prefer: wait=N`` honoured on ``POST /generate/async``; larger N are cut to it."""
DEFAULT_EVENT_STREAM_POLL_SECONDS = 2.0
"""An open event stream (or a waiting ``Prefer: wait``) re-reads its request at least this often, even without
an event: it updates the queue position and covers a notification lost while a broker reconnected."""
DEFAULT_EVENT_STREAM_KEEPALIVE_SECONDS = 15.0
"""An event stream with nothing to say sends a keep-alive comment this often (proxies close idle streams)."""

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Everything an operator can configure. Environment variables use the OPENHORDE_ prefix."""

    model_config = SettingsConfigDict(env_prefix="OPENHORDE_", env_file=".env", extra="ignore")

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default is SQLite in the data directory.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients and workers reach this server at (for presigned URLs).",
    )
    secret_key: str | None = Field(
        default=None,
        description="Server secret for API-key hashing and URL signing; generated into the data dir if unset.",
    )
    result_retention_seconds: int = DEFAULT_RESULT_RETENTION_SECONDS
    upload_url_ttl_seconds: int = DEFAULT_UPLOAD_URL_TTL_SECONDS
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    worker_stale_seconds: int = DEFAULT_WORKER_STALE_SECONDS
    check_in_debounce_seconds: int = DEFAULT_CHECK_IN_DEBOUNCE_SECONDS
    maintenance_interval_seconds: float = DEFAULT_MAINTENANCE_INTERVAL_SECONDS
    source_fetch_timeout_seconds: float = Field(default=DEFAULT_SOURCE_FETCH_TIMEOUT_SECONDS, gt=0)
    check_cache_seconds: float = DEFAULT_CHECK_CACHE_SECONDS
    modes_cache_seconds: float = Field(default=DEFAULT_MODES_CACHE_SECONDS, ge=0)
    job_lease_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A fixed lease for every job instead of the AI Horde formula (at least 150 s); for private "
        "hordes whose workers are known to be fast, and for tests of lease expiry.",
    )
    allow_custom_models: bool = Field(
        default=False,
        description="Let workers advertise models that are not in the catalogue.",
    )
    # Rate limits and IP countermeasures.
    rate_limits: Literal["on", "off"] = Field(
        default="on",
        description="'off' turns every rate limit and the anonymous per-IP queue limit off (load tests).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate-limit counters and IP timeouts, shared by every server process; "
        "in-process memory when unset.",
    )
    redis_key_prefix: str = DEFAULT_REDIS_KEY_PREFIX
    rate_limit_default: str = DEFAULT_RATE_LIMIT_DEFAULT
    rate_limit_generate_async: str = DEFAULT_RATE_LIMIT_GENERATE_ASYNC
    rate_limit_generate_async_key: str = DEFAULT_RATE_LIMIT_GENERATE_ASYNC_KEY
    rate_limit_generate_async_anonymous: str = DEFAULT_RATE_LIMIT_GENERATE_ASYNC_ANONYMOUS
    rate_limit_generate_check: str = DEFAULT_RATE_LIMIT_GENERATE_CHECK
    rate_limit_generate_status: str = DEFAULT_RATE_LIMIT_GENERATE_STATUS
    rate_limit_job_traffic: str = DEFAULT_RATE_LIMIT_JOB_TRAFFIC
    rate_limit_kudos_transfer: str = DEFAULT_RATE_LIMIT_KUDOS_TRANSFER
    rate_limit_register: str = DEFAULT_RATE_LIMIT_REGISTER
    rate_limit_users: str = DEFAULT_RATE_LIMIT_USERS
    rate_limit_worker_modify: str = DEFAULT_RATE_LIMIT_WORKER_MODIFY
    anonymous_ip_concurrency: int = Field(default=DEFAULT_ANONYMOUS_IP_CONCURRENCY, ge=1)
    # Shared keys and teams.
    max_shared_keys: int = Field(default=DEFAULT_MAX_SHARED_KEYS, ge=0)
    max_shared_keys_trusted: int = Field(default=DEFAULT_MAX_SHARED_KEYS_TRUSTED, ge=0)
    log_level: LogLevel = "info"
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port; use PostgreSQL when more than one.",
    )
    # Worker economy.
    uptime_reward_interval_seconds: int = Field(
        default=DEFAULT_UPTIME_REWARD_INTERVAL_SECONDS,
        ge=0,
        description="Seconds of worker uptime per uptime reward; 0 turns uptime rewards off.",
    )
    escrow_share: float = Field(
        default=DEFAULT_ESCROW_SHARE,
        ge=0,
        le=1,
        description="Share of an untrusted owner's image rewards held in escrow; 0 turns escrow off.",
    )
    uptime_escrow_share: float = Field(
        default=DEFAULT_UPTIME_ESCROW_SHARE,
        ge=0,
        le=1,
        description="Share of an untrusted owner's uptime rewards held in escrow.",
    )
    trust_after_kudos: float | None = Field(
        default=DEFAULT_TRUST_AFTER_KUDOS,
        ge=0,
        description="Kudos earned while untrusted after which an owner is trusted automatically (with the "
        "image and age conditions); unset: only moderators trust.",
    )
    trust_after_images: int = Field(default=DEFAULT_TRUST_AFTER_IMAGES, ge=0)
    trust_min_account_age_seconds: int = Field(default=DEFAULT_TRUST_MIN_ACCOUNT_AGE_SECONDS, ge=0)
    worker_max_aborts_per_hour: int | None = Field(
        default=DEFAULT_WORKER_MAX_ABORTS_PER_HOUR,
        ge=0,
        description="Aborted jobs per hour beyond which a worker goes into maintenance; unset: never.",
    )
    # Tiers and Stripe.
    supporter_priority_boost: float = Field(
        default=DEFAULT_SUPPORTER_PRIORITY_BOOST,
        ge=0,
        description="Queue priority (kudos) added to an active supporter's requests.",
    )
    supporter_monthly_kudos: int = Field(
        default=DEFAULT_SUPPORTER_MONTHLY_KUDOS,
        ge=0,
        description="Kudos granted to a supporter once per calendar month (UTC).",
    )
    stripe_webhook_secret: str | None = Field(
        default=None,
        description="Signing secret (whsec_...) of the Stripe webhook endpoint; unset turns the endpoint off.",
    )
    # Webhooks.
    webhook_secret: str | None = Field(
        default=None,
        description="Secret that signs webhook deliveries (X-OpenHorde-Signature); unset: derived from the "
        "server secret.",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts webhooks may go to ('example.com', '*.example.com'); empty: any.",
    )
    webhook_timeout_seconds: float = Field(default=DEFAULT_WEBHOOK_TIMEOUT_SECONDS, gt=0)
    webhook_max_attempts: int = Field(default=DEFAULT_WEBHOOK_MAX_ATTEMPTS, ge=1)
    webhook_backoff_seconds: float = Field(default=DEFAULT_WEBHOOK_BACKOFF_SECONDS, ge=0)
    webhook_backoff_max_seconds: float = Field(default=DEFAULT_WEBHOOK_BACKOFF_MAX_SECONDS, ge=0)
    webhook_poll_interval_seconds: float = Field(default=DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS, gt=0)
    # Several servers, metrics, S3 blobs.
    blob_store: Literal["local", "s3"] = Field(
        default=DEFAULT_BLOB_STORE,
        description="'local': images in the data directory, served through /blobs; 's3': an S3-compatible "
        "bucket, with boto3 presigned URLs (needs the s3 extra).",
    )
    s3_bucket: str | None = Field(default=None, description="Bucket of the S3 blob store (must exist).")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible server (MinIO, R2, Ceph...); unset: AWS S3. Workers and "
        "clients must reach it: presigned URLs point there.",
    )
    s3_region: str | None = Field(default=None, description="Region of the bucket (AWS: e.g. eu-west-1).")
    s3_access_key_id: str | None = Field(
        default=None, description="Access key of the S3 blob store; unset: boto3's usual credential chain."
    )
    s3_secret_access_key: str | None = Field(default=None, description="Secret key matching s3_access_key_id.")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default=DEFAULT_S3_ADDRESSING_STYLE, description="S3 URL style; 'path' for most self-hosted servers."
    )
    s3_prefix: str = Field(default=DEFAULT_S3_PREFIX, description="Prefix of every object key in the bucket.")
    metrics_enabled: bool = Field(
        default=DEFAULT_METRICS_ENABLED,
        description="Serve GET /metrics (Prometheus); block it at the reverse proxy if it should stay private.",
    )

    # Push instead of poll.
    prefer_wait_max_seconds: int = Field(
        default=DEFAULT_PREFER_WAIT_MAX_SECONDS,
        ge=0,
        description="Longest Prefer: wait=N honoured on POST /generate/async; 0 ignores the header.",
    )
    event_stream_poll_seconds: float = Field(default=DEFAULT_EVENT_STREAM_POLL_SECONDS, gt=0)
    event_stream_keepalive_seconds: float = Field(default=DEFAULT_EVENT_STREAM_KEEPALIVE_SECONDS, gt=0)

    # Safety on the open internet.
    allow_private_addresses: bool = DEFAULT_ALLOW_PRIVATE_ADDRESSES
    max_redirects: int = Field(default=DEFAULT_MAX_REDIRECTS, ge=0, le=10)
    trusted_proxies: str = DEFAULT_TRUSTED_PROXIES
    max_request_body_bytes: int | None = Field(default=DEFAULT_MAX_REQUEST_BODY_BYTES, ge=1024)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # a ValueError names the bad entry
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'horde.db').resolve()}"

    @property
    def resolved_max_request_body_bytes(self) -> int:
        """The request body limit in use: the configured one, or room for two base64 images and the rest."""
        if self.max_request_body_bytes is not None:
            return self.max_request_body_bytes
        base64_image = -(-self.max_upload_bytes // 3) * 4  # base64 writes 4 characters per 3 bytes
        return 2 * base64_image + REQUEST_BODY_HEADROOM_BYTES

    @property
    def resolved_public_url(self) -> str:
        """Base URL (no trailing slash) used in the presigned URLs handed to workers and clients."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def export_to_environment(self) -> None:
        """Put every setting into this process's environment, so child server processes build the same ones."""
        for name, value in self.model_dump(exclude_none=True).items():
            os.environ[f"OPENHORDE_{name.upper()}"] = str(value)

    @property
    def blob_dir(self) -> Path:
        """Directory of the local blob store (images)."""
        return self.data_dir / "blobs"
