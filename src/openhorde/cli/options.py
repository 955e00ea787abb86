"""Options shared by ``openhorde serve`` and ``openhorde admin``, and the ``Settings`` they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from openhorde.config import Settings

HostOption = Annotated[str | None, typer.Option(help="Address to listen on (env OPENHORDE_HOST; default 127.0.0.1).")]
PortOption = Annotated[int | None, typer.Option(help="Port (env OPENHORDE_PORT; default 7001).")]
DataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data directory: database, images, secret (env OPENHORDE_DATA_DIR; default ./horde-data)."),
]


def build_settings(host: str | None = None, port: int | None = None, data_dir: Path | None = None) -> Settings:
    """Settings from the environment, with any command-line flags on top."""
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
