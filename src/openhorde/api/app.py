"""The ASGI application: ``create_app(settings)`` wires storage, domain and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openhorde import __version__
from openhorde.api import metrics
from openhorde.api.deps import RateLimits
from openhorde.api.direct import install_direct_routes
from openhorde.api.errors import install_error_handlers
from openhorde.api.field_masks import FieldMasks
from openhorde.api.openapi import install_openapi
from openhorde.api.push import start_push
from openhorde.api.ratelimit import start_rate_limits, stop_rate_limits
from openhorde.api.request_guard import RequestGuard
from openhorde.api.routes import (
    audit,
    billing,
    blobs,
    collections,
    documents,
    filters,
    gallery,
    generate,
    interrogate,
    ip_timeouts,
    jobs,
    kudos,
    moderation_events,
    ratings,
    request_payloads,
    sharedkeys,
    stats,
    status,
    stream,
    styles,
    teams,
    users,
    worker_messages,
    workers,
)
from openhorde.config import Settings
from openhorde.domain import accounts, catalogue, webhook_delivery
from openhorde.domain.context import HordeContext
from openhorde.domain.queue.availability import QueueView
from openhorde.domain.queue.leases import run_maintenance
from openhorde.net.addresses import AddressPolicy
from openhorde.net.fetch import guarded_client
from openhorde.storage.db import Database
from openhorde.storage.events import open_broker
from openhorde.storage.files import private_dir
from openhorde.storage.migrate import upgrade_to_head
from openhorde.storage.s3_blobs import open_blob_store
from openhorde.storage.secrets import load_or_create_secret
from openhorde.web import mount_web_ui

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2"

API_DESCRIPTION = """OpenHorde speaks the AI Horde v2 image API: the same paths, fields and return codes,
so existing clients, bots and workers work unchanged. Errors are `{"message": ..., "rc": ...}`.
Extensions of ours: `POST /api/v2/register`, `/blobs/...` presigned image URLs, `"gallery": true` on
`POST /generate/async` with `/api/v2/gallery` to list and delete kept images, `GET /api/v2/kudos/history`, and
`POST`/`DELETE /api/v2/status/news` for admins to publish news."""


async def _maintenance_loop(db: Database, ctx: HordeContext) -> None:
    """Expire leases and remove old requests every few seconds, until cancelled."""
    while True:
        await asyncio.sleep(ctx.settings.queue.maintenance_interval_seconds)
        try:
            async with db.store() as store:
                report = await run_maintenance(store, ctx, time.time())
            metrics.count_maintenance(report)
            await flush_tallies(db, ctx)
        except Exception:  # keep the loop alive; the next pass retries
            log.exception("maintenance pass failed")


async def flush_tallies(db: Database, ctx: HordeContext) -> None:
    """Write the figures this process added up in memory (usage, images made), each in its own transaction."""
    async with db.store() as store:
        await ctx.usage.flush(store)
    async with db.store() as store:
        await ctx.image_stats.flush(store, time.time())


async def prepare_storage(settings: Settings) -> tuple[Database, HordeContext]:
    """Open the database (migrating it) and the blob store, and seed what every horde has."""
    if not settings.data_dir.exists():
        private_dir(settings.data_dir)
    secret = load_or_create_secret(settings.data_dir, settings.secret_key)
    db = Database(settings.resolved_database_url)
    await upgrade_to_head(db)
    async with db.store() as store:
        await accounts.ensure_anonymous_user(store, secret, time.time())
        await catalogue.ensure_seeded(store)
    blob_store = open_blob_store(settings, secret)
    outbound = guarded_client(
        AddressPolicy(allow_private=settings.limits.allow_private_addresses),
        settings.limits.max_redirects,
        # Plain bytes: a compressed answer could inflate far past the size cap inside one read.
        headers={"User-Agent": f"OpenHorde/{__version__}", "Accept-Encoding": "identity"},
    )
    return db, HordeContext(settings=settings, secret=secret, blobs=blob_store, outbound=outbound)


def freeze_startup_objects() -> None:
    """For a server process, once its app is built: take what exists then (modules, classes, routes, schemas: some
    270,000 objects that live as long as the process) out of the garbage collector's reach, and collect young
    objects less often. Under the job-cycle benchmark each full collection walked them all (about 190 ms of CPU in
    the middle of requests, every few seconds), and young collections ran 30 times a second: the collector took
    6 % of the server's CPU, now under 0.5 %. Not for tests, which build many apps in one process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app_from_environment() -> FastAPI:
    """The app for settings taken from the environment: the factory each of several server processes calls."""
    app = create_app(Settings())
    freeze_startup_objects()
    return app


def create_app(settings: Settings) -> FastAPI:
    """The horde server for ``settings``; storage opens when the app starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db, ctx = await prepare_storage(settings)
        app.state.db, app.state.context = db, ctx
        app.state.queue_view = QueueView(settings, ctx.eligibility)
        # Changes travel between server processes on the broker (Redis, PostgreSQL NOTIFY or in-process): event
        # streams wait on them, and each process's caches drop what another process changed.
        broker = open_broker(db, settings.redis_url, settings.redis_key_prefix)
        broker.add_listener(ctx.keys.on_change)
        broker.add_listener(ctx.workers.on_change)
        broker.add_listener(ctx.catalogue.on_change)
        broker.add_listener(ctx.idle.on_change)
        broker.add_listener(ctx.eligibility.on_change)
        broker.add_listener(app.state.queue_view.on_change)
        await broker.start()
        app.state.broker = broker
        start_rate_limits(app, settings, ctx.secret)
        start_push(app, settings)
        maintenance = asyncio.create_task(_maintenance_loop(db, ctx))
        webhook_sender = asyncio.create_task(webhook_delivery.run(db, ctx))
        log.info("OpenHorde %s serving on %s", __version__, settings.resolved_public_url)
        try:
            yield
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            webhook_sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await webhook_sender
            await flush_tallies(db, ctx)
            await stop_rate_limits(app)
            await broker.close()
            await ctx.outbound.aclose()
            await db.dispose()

    app = FastAPI(
        title="OpenHorde",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/api/swagger.json",
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        lifespan=lifespan,
        # The horde's metrics are Prometheus' (/metrics). With FastAPI's OpenTelemetry on, every request asked the
        # global OpenTelemetry providers whether they were set up, reading the environment three times.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Added first, so innermost: their 400s and 413s get CORS headers and are counted by the metrics; the field
    # masks see only what the guard let through.
    app.add_middleware(FieldMasks)
    app.add_middleware(RequestGuard, max_body_bytes=settings.resolved_max_request_body_bytes)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(metrics.MetricsMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    api = APIRouter(prefix=API_PREFIX, dependencies=[RateLimits])
    # Routes are matched in order: the calls every worker and client makes each second come first.
    # worker_messages before workers: /workers/messages must not match /workers/{worker_id}.
    hot = (jobs, generate, status)
    moderation = (filters, worker_messages, moderation_events, ip_timeouts)
    routers = (*hot, *moderation, workers, users, kudos, gallery, audit, billing)
    for module in (
        *routers,
        ratings,
        request_payloads,
        sharedkeys,
        teams,
        interrogate,
        styles,
        collections,
        stats,
        documents,
        stream,
    ):
        api.include_router(module.router)
    # The image store's routes before the API's: a worker uploads each image it makes, and a path is matched
    # against every route before it (the API's ~200 cost 0.4 ms a call).
    app.include_router(blobs.router)
    app.include_router(api)
    # The hot routes, served without FastAPI's per-call dependency work.
    install_direct_routes(app, API_PREFIX, [module.router for module in hot], [blobs.router])
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    mount_web_ui(app)
    return app
