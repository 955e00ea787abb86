"""The one settings object, in groups by concept; long because every setting sits here with its default and meaning.

Precedence: environment (``OPENHORDE_*``), then a ``.env`` file in the working directory,
then the defaults below. Settings are built once in an entry point and passed down
(``create_app(settings)``); nothing else reads the environment.

Every setting, grouped or not, keeps a flat name: its environment variable is ``OPENHORDE_<NAME>``
(``OPENHORDE_MAX_UPLOAD_BYTES``, not ``OPENHORDE_BLOBS__...``), and ``Settings(max_upload_bytes=...)``
works as well as ``Settings(blobs=BlobSettings(max_upload_bytes=...))``. Code reads it in its group:
``settings.blobs.max_upload_bytes``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REQUEST_BODY_HEADROOM_BYTES = 2 * 1024 * 1024
"""Room for the rest of a request (prompt, parameters) beside its base64 images, in bytes."""

LogLevel = Literal["debug", "info", "warning", "error"]


class BlobSettings(BaseModel):
    """Images: where they live (the data directory or an S3 bucket), how large, and for how long."""

    blob_store: Literal["local", "s3"] = Field(
        default="local",
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
        default="auto", description="S3 URL style; 'path' for most self-hosted servers."
    )
    s3_prefix: str = Field(default="", description="Prefix of every object key in the bucket.")
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest image a worker may upload, or a client may send as a source image.",
    )
    upload_url_ttl_seconds: int = Field(default=30 * 60, description="Lifetime of a presigned upload or download URL.")
    result_retention_seconds: int = Field(
        default=20 * 60,
        description="How long a request and its images stay retrievable after its last activity.",
    )


class LimitSettings(BaseModel):
    """Rate limits, IP countermeasures and the safety of a server on the open internet.

    Rate limits read "N/unit[, N/unit...]" (units second, minute, hour, day; a window length may precede the unit:
    "5/10s"); "" means no limit. Numbers are the AI Horde's (reference §4.1) except where noted.
    """

    rate_limits: Literal["on", "off"] = Field(
        default="on",
        description="'off' turns every rate limit and the anonymous per-IP queue limit off (load tests).",
    )
    rate_limit_default: str = Field(
        default="90/minute",
        description="Per IP, on every /api/v2 route without limits of its own (``/status/heartbeat`` is exempt).",
    )
    rate_limit_generate_async: str = Field(
        default="90/minute, 2/second", description="``POST /generate/async`` per IP."
    )
    rate_limit_generate_async_key: str = Field(default="2/second", description="``POST /generate/async`` per API key.")
    rate_limit_generate_async_anonymous: str = Field(
        default="60/second",
        description="``POST /generate/async`` for the shared anonymous key (all anonymous callers together).",
    )
    rate_limit_generate_check: str = Field(
        default="10/second",
        description="``GET /generate/check/{id}`` and ``GET /interrogate/status/{id}`` per IP and request.",
    )
    rate_limit_generate_status: str = Field(
        default="10/minute", description="``GET /generate/status/{id}`` per IP and request."
    )
    rate_limit_job_traffic: str = Field(
        default="60/second",
        description="``POST /generate/pop``, ``/generate/submit``, ``/interrogate/pop`` and "
        "``/interrogate/submit`` per IP.",
    )
    rate_limit_kudos_transfer: str = Field(
        default="1/second, 90/hour", description="``POST /kudos/transfer`` per API key."
    )
    rate_limit_register: str = Field(
        default="20/hour",
        description="``POST /register`` per IP (ours: the AI Horde registers through its web site).",
    )
    rate_limit_users: str = Field(default="60/minute", description="``GET`` and ``PUT /users/{id}`` per IP.")
    rate_limit_worker_modify: str = Field(default="30/minute", description="``PUT /workers/{id}`` per IP.")
    anonymous_ip_concurrency: int = Field(
        default=30,
        ge=1,
        description="Images the anonymous key may have queued from one IP (ours; a registered user's default "
        "concurrency).",
    )
    max_request_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Largest request body the server reads, in bytes; a larger one is refused with 413 before or "
        "while it arrives. Unset: room for a source image and a mask of ``max_upload_bytes`` each, base64-encoded, "
        "plus 2 MiB for the rest (28.7 MiB with the default ``max_upload_bytes``). Image uploads to ``/blobs`` keep "
        "their own limit, ``max_upload_bytes``.",
    )
    max_source_pixels: int = Field(
        default=3072 * 3072,
        description="Largest source image (width × height) accepted; guards against decompression bombs.",
    )
    source_fetch_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Total time a source image given as an http(s) URL may take to download: connecting, every "
        "redirect and every byte together. A server dripping its answer slowly is cut off at this deadline.",
    )
    max_redirects: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Redirects a source image download or a webhook delivery follows at most; every hop is checked.",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Let source image URLs and webhooks reach loopback, private and link-local addresses. Off on a "
        "public horde: on, anyone who can queue a request can make the server fetch from its own network.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (``10.0.0.0/8``) of reverse proxies whose "
        "``X-Forwarded-For`` is believed; empty: the header is ignored and the caller is the connecting address.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # a ValueError names the bad entry
        return value


class QueueSettings(BaseModel):
    """The queue and its workers: leases, check-ins, the maintenance pass, cached counters."""

    job_lease_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A fixed lease for every job instead of the AI Horde formula (at least 150 s); for private "
        "hordes whose workers are known to be fast, and for tests of lease expiry.",
    )
    worker_stale_seconds: int = Field(default=300, description="A worker that has not popped for this long is offline.")
    check_in_debounce_seconds: int = Field(
        default=30,
        description="A pop rewrites the worker row only when its capabilities changed or this long has passed.",
    )
    maintenance_interval_seconds: float = Field(
        default=5.0, description="How often the server expires leases and removes old requests."
    )
    check_cache_seconds: float = Field(
        default=10.0,
        description="How long a process may reuse a request's counters for ``/generate/check``; every change of "
        "the request, in any server process, drops them at once, so this only bounds the cost of a change "
        "announcement lost on the way. ``0`` reads them on every check.",
    )
    allow_custom_models: bool = Field(
        default=False, description="Let workers advertise models that are not in the catalogue."
    )


class ModerationSettings(BaseModel):
    """Moderation: horde modes and prompt filters."""

    modes_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a process reuses the horde modes (and the prompt filters' version) before reading "
        "them again; the process that changes them sees the change at once.",
    )


class SharedKeySettings(BaseModel):
    """Shared keys and teams. Numbers are the AI Horde's (reference §1.4)."""

    max_shared_keys: int = Field(default=3, ge=0, description="Shared keys a user may have at once.")
    max_shared_keys_trusted: int = Field(
        default=10,
        ge=0,
        description="Shared keys a trusted user or a moderator may have at once (education accounts: 1000).",
    )


class EconomySettings(BaseModel):
    """Worker economy (uptime rewards, escrow of untrusted owners' rewards, automatic trust and maintenance), the
    Supporter tier and Stripe. Numbers are the AI Horde's (reference §3.3, §4.5) except where noted."""

    uptime_reward_interval_seconds: int = Field(
        default=600,
        ge=0,
        description="Seconds of worker uptime per uptime reward; 0 turns uptime rewards off.",
    )
    escrow_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of an untrusted owner's image rewards held in escrow; 0 turns escrow off.",
    )
    uptime_escrow_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of an untrusted owner's uptime rewards held in escrow.",
    )
    trust_after_kudos: float | None = Field(
        default=10_000.0,
        ge=0,
        description="Kudos earned while untrusted after which an owner is trusted automatically (with the "
        "image and age conditions); unset: only moderators trust.",
    )
    trust_after_images: int = Field(
        default=0,
        ge=0,
        description="Images an untrusted owner's workers must deliver before automatic trust (ours; 0: no such "
        "condition).",
    )
    trust_min_account_age_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="Minimum account age for automatic trust."
    )
    worker_max_aborts_per_hour: int | None = Field(
        default=20,
        ge=0,
        description="Aborted jobs per hour beyond which a worker goes into maintenance; unset: never.",
    )
    supporter_priority_boost: float = Field(
        default=3000.0,
        ge=0,
        description="Queue priority (kudos) added to an active supporter's requests (3000 is worth 600 s of waiting).",
    )
    supporter_monthly_kudos: int = Field(
        default=1000,
        ge=0,
        description="Kudos granted to a supporter once per calendar month (UTC).",
    )
    stripe_webhook_secret: str | None = Field(
        default=None,
        description="Signing secret (whsec_...) of the Stripe webhook endpoint; unset turns the endpoint off.",
    )


class WebhookSettings(BaseModel):
    """Webhooks: signed deliveries from an outbox, retried with backoff."""

    webhook_secret: str | None = Field(
        default=None,
        description="Secret that signs webhook deliveries (X-OpenHorde-Signature); unset: derived from the "
        "server secret.",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts webhooks may go to ('example.com', '*.example.com'); empty: any.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time one webhook POST may take (connect to response) before it counts as failed.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts per event before its delivery is marked failed."
    )
    webhook_backoff_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Wait after the first failed attempt; it doubles after each further one (less up to half, at "
        "random).",
    )
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0, description="Longest wait between two attempts.")
    webhook_poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often each server process looks for due webhook deliveries."
    )


class PushSettings(BaseModel):
    """Push instead of poll: request event streams and ``Prefer: wait``."""

    prefer_wait_max_seconds: int = Field(
        default=60,
        ge=0,
        description="Longest Prefer: wait=N honoured on POST /generate/async; 0 ignores the header.",
    )
    event_stream_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="An open event stream (or a waiting ``Prefer: wait``) re-reads its request at least this often, "
        "even without an event: it updates the queue position and covers a notification lost while a broker "
        "reconnected.",
    )
    event_stream_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        description="An event stream with nothing to say sends a keep-alive comment this often (proxies close idle "
        "streams).",
    )


GROUPS: dict[str, type[BaseModel]] = {
    "blobs": BlobSettings,
    "limits": LimitSettings,
    "queue": QueueSettings,
    "moderation": ModerationSettings,
    "sharedkeys": SharedKeySettings,
    "economy": EconomySettings,
    "webhooks": WebhookSettings,
    "push": PushSettings,
}
"""Settings field -> the group model it holds."""

GROUP_OF: dict[str, str] = {name: group for group, model in GROUPS.items() for name in model.model_fields}
"""Flat setting name (``max_upload_bytes``) -> the group holding it (``blobs``)."""


class _FlatGroupedNames(PydanticBaseSettingsSource):
    """An environment source (the process environment or the ``.env`` file) that also reads the grouped settings
    under their flat names: ``OPENHORDE_MAX_UPLOAD_BYTES`` gives ``max_upload_bytes``, which ``Settings`` moves into
    its group."""

    def __init__(self, settings_cls: type[BaseSettings], inner: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        for name in GROUP_OF:
            env_name = self.inner.env_prefix + name
            value = self.inner.env_vars.get(env_name if self.inner.case_sensitive else env_name.lower())
            if value is not None:
                data[name] = value
        return data


class Settings(BaseSettings):
    """Everything an operator can configure. Environment variables use the OPENHORDE_ prefix and the flat name."""

    model_config = SettingsConfigDict(env_prefix="OPENHORDE_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address the server listens on (0.0.0.0 for every interface).")
    port: int = Field(default=7001, description="Port the server listens on.")
    data_dir: Path = Field(
        default=Path("./horde-data"),
        description="Directory of the SQLite database, the generated secret and the local blob store.",
    )
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
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate-limit counters and IP timeouts, shared by every server process; "
        "in-process memory when unset.",
    )
    redis_key_prefix: str = Field(
        default="openhorde:", description="Prefix of every Redis key (to share one Redis between hordes)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port; use PostgreSQL when more than one.",
    )
    log_level: LogLevel = Field(default="info", description="debug, info, warning or error.")
    metrics_enabled: bool = Field(
        default=True,
        description="Serve GET /metrics (Prometheus); block it at the reverse proxy if it should stay private.",
    )

    blobs: BlobSettings = Field(default_factory=BlobSettings, description=BlobSettings.__doc__)
    limits: LimitSettings = Field(default_factory=LimitSettings, description=LimitSettings.__doc__)
    queue: QueueSettings = Field(default_factory=QueueSettings, description=QueueSettings.__doc__)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings, description=ModerationSettings.__doc__)
    sharedkeys: SharedKeySettings = Field(default_factory=SharedKeySettings, description=SharedKeySettings.__doc__)
    economy: EconomySettings = Field(default_factory=EconomySettings, description=EconomySettings.__doc__)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings, description=WebhookSettings.__doc__)
    push: PushSettings = Field(default_factory=PushSettings, description=PushSettings.__doc__)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, the environment and the ``.env`` file also giving grouped settings by flat name."""
        assert isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, EnvSettingsSource)
        env = _FlatGroupedNames(settings_cls, env_settings)
        return init_settings, env, _FlatGroupedNames(settings_cls, dotenv_settings), file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _flat_names_into_groups(cls, data: Any) -> Any:
        """Move flat names (``max_upload_bytes=...``) into their group; a value given in the group itself wins."""
        if not isinstance(data, dict) or not any(name in GROUP_OF for name in data):
            return data
        data = dict(data)
        for name in [name for name in data if name in GROUP_OF]:
            value, group = data.pop(name), GROUP_OF[name]
            given = data.get(group)
            nested = dict(given.model_dump(exclude_unset=True) if isinstance(given, BaseModel) else given or {})
            nested.setdefault(name, value)
            data[group] = nested
        return data

    @classmethod
    def flat_fields(cls) -> dict[str, FieldInfo]:
        """Every setting by its flat name (the environment variable less ``OPENHORDE_``), groups' settings included."""
        fields: dict[str, FieldInfo] = {}
        for name, field in cls.model_fields.items():
            fields.update(GROUPS[name].model_fields if name in GROUPS else {name: field})
        return fields

    def flat_values(self) -> dict[str, Any]:
        """Every setting's value by its flat name."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            values.update(dict(value) if name in GROUPS else {name: value})
        return values

    def export_to_environment(self) -> None:
        """Put every setting into this process's environment, so child server processes build the same ones."""
        for name, value in self.flat_values().items():
            if value is not None:
                os.environ[f"OPENHORDE_{name.upper()}"] = str(value)

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'horde.db').resolve()}"

    @property
    def resolved_max_request_body_bytes(self) -> int:
        """The request body limit in use: the configured one, or room for two base64 images and the rest."""
        if self.limits.max_request_body_bytes is not None:
            return self.limits.max_request_body_bytes
        base64_image = -(-self.blobs.max_upload_bytes // 3) * 4  # base64 writes 4 characters per 3 bytes
        return 2 * base64_image + REQUEST_BODY_HEADROOM_BYTES

    @property
    def resolved_public_url(self) -> str:
        """Base URL (no trailing slash) used in the presigned URLs handed to workers and clients."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def blob_dir(self) -> Path:
        """Directory of the local blob store (images)."""
        return self.data_dir / "blobs"
