"""``openhorde serve``: run the horde server with uvicorn, in one process or several sharing the port."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console

from openhorde.cli.options import DataDirOption, HostOption, PortOption, build_settings

console = Console()

WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Server processes sharing the port (env OPENHORDE_WORKERS; default 1). Use PostgreSQL with more than one."
    ),
]


def serve(
    host: HostOption = None, port: PortOption = None, data_dir: DataDirOption = None, workers: WorkersOption = None
) -> None:
    """Run the horde server (API under /api/v2, docs at /api/docs)."""
    from openhorde.api.app import create_app, freeze_startup_objects, prepare_storage
    from openhorde.api.http_protocol import JoinedWritesHttpToolsProtocol

    settings = build_settings(host, port, data_dir)
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(f"OpenHorde on http://{settings.host}:{settings.port}  (data in {settings.data_dir.resolve()})")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.log_level == "debug",
        # X-Forwarded-For is ours to judge (api/proxies.py, OPENHORDE_TRUSTED_PROXIES), not uvicorn's.
        "proxy_headers": False,
        "http": JoinedWritesHttpToolsProtocol,  # one send per answer
    }
    if settings.workers == 1:
        app = create_app(settings)
        freeze_startup_objects()
        uvicorn.run(app, **options)
        return

    async def migrate_once() -> None:
        db, _ctx = await prepare_storage(settings)
        await db.dispose()

    # Migrate and create the secret once, here, so the processes don't race to do it; they read
    # the same settings from the environment and the same secret from the data directory.
    asyncio.run(migrate_once())
    settings.export_to_environment()
    uvicorn.run("openhorde.api.app:create_app_from_environment", factory=True, workers=settings.workers, **options)
