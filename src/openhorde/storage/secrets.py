"""The server secret: generated once into the data directory, or given in the settings."""

from __future__ import annotations

import secrets
from pathlib import Path

from openhorde.storage.files import write_private

SECRET_FILE_NAME = "secret.key"


def load_or_create_secret(data_dir: Path, configured: str | None = None) -> str:
    """The configured secret, else the one stored in ``data_dir``, creating it on first start."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    write_private(path, value.encode())
    return value
