"""The one settings object, with every default as a named constant.

Precedence: environment (``OPENHORDE_*``), then a ``.env`` file in the working directory,
then the defaults below. Settings are built once in an entry point and passed down
(``create_app(settings)``); nothing else reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
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

DEFAULT_CHECK_CACHE_SECONDS = 1.0
"""How long a ``/generate/check`` answer may be reused (the AI Horde caches it 1 s); this process's own
pops, submits and cancels refresh it at once."""

DEFAULT_SOURCE_FETCH_TIMEOUT_SECONDS = 5.0
"""Timeout for downloading a source image given as an http(s) URL."""

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
    source_fetch_timeout_seconds: float = DEFAULT_SOURCE_FETCH_TIMEOUT_SECONDS
    check_cache_seconds: float = DEFAULT_CHECK_CACHE_SECONDS
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
    log_level: LogLevel = "info"
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port; use PostgreSQL when more than one.",
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'horde.db').resolve()}"

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
