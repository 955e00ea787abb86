"""``/metrics``: Prometheus text exposition of this process's counters and the horde's gauges.

Counters and histograms (pops, finished jobs, maintenance passes, request latency) count what THIS
process did since it started: each server process has its own. Scrape every process (run them on
their own ports, see docs/deploy.md) and sum in PromQL (``sum without(instance) (rate(...))``).
Gauges (queue depth per model, workers online, jobs processing) are read from the database at scrape
time, so every process answers the same horde-wide values. We do not use prometheus_client's
multiprocess mode: it needs an environment variable before the first import, a shared directory
wiped at each start and per-pid files, and with ``--workers N`` on one port the load balancing of
scrapes would still be the kernel's; per-process counters with one scrape target each are simpler.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openhorde.api.routing import route_template
from openhorde.domain.queue.leases import MaintenanceReport
from openhorde.storage.db import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
POPS = Counter("openhorde_pops", "Job pops answered by this process, by outcome.", ["outcome"], registry=REGISTRY)
JOBS_COMPLETED = Counter("openhorde_jobs_completed", "Jobs submitted with an image.", registry=REGISTRY)
JOBS_FAULTED = Counter(
    "openhorde_jobs_faulted",
    "Jobs that failed: reported faulted by the worker, or lease expired (found by this process's maintenance).",
    ["reason"],
    registry=REGISTRY,
)
MAINTENANCE_PASSES = Counter(
    "openhorde_maintenance_passes",
    "Maintenance passes of this process: ran (did work), idle (nothing to do) or skipped (another process "
    "held the cluster lock).",
    ["outcome"],
    registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "openhorde_http_request_duration_seconds",
    "Time from receiving an HTTP request to sending its response headers, per route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
MAX_KEPT_SERIES = 4096
"""Labelled series the middleware keeps at hand (routes × methods × statuses: a few hundred in practice)."""
REQUESTS = Counter(
    "openhorde_http_requests",
    "HTTP requests answered, per route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)

for _outcome in ("job", "empty"):
    POPS.labels(_outcome)
for _reason in ("worker", "lease_expired"):
    JOBS_FAULTED.labels(_reason)


def count_pop(handed_out: bool) -> None:
    """Count one answered pop."""
    POPS.labels("job" if handed_out else "empty").inc()


def count_submit(state: str) -> None:
    """Count one accepted submit: completed, or faulted by the worker."""
    if state == "faulted":
        JOBS_FAULTED.labels("worker").inc()
    else:
        JOBS_COMPLETED.inc()


def count_maintenance(report: MaintenanceReport) -> None:
    """Count one maintenance pass and the leases it expired."""
    if report.skipped:
        MAINTENANCE_PASSES.labels("skipped").inc()
        return
    did_work = report.expired_jobs or report.timed_out_requests or report.removed_requests
    MAINTENANCE_PASSES.labels("ran" if did_work else "idle").inc()
    JOBS_FAULTED.labels("lease_expired").inc(report.expired_jobs)


class MetricsMiddleware:
    """Times every HTTP request until its response starts (so an event stream counts its first byte).

    The labelled series of each (method, route, status) are looked up once and kept: ``labels()`` and the route's
    template cost more than the observation itself, on every call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._series: dict[tuple[str, int, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                latency, count = self._series_of(scope, message["status"])
                latency.observe(time.perf_counter() - started)
                count.inc()
            await send(message)

        await self.app(scope, receive, timed_send)

    def _series_of(self, scope: Scope, status: int) -> tuple[Any, Any]:
        # A route object's template with its prefixes is the same on every call (unmatched: no route at all).
        key = (scope["method"], id(scope.get("route")), status)  # by identity: routes live as long as the app
        series = self._series.get(key)
        if series is None:
            method, route = scope["method"], route_template(scope) or "unmatched"
            series = (REQUEST_LATENCY.labels(method, route), REQUESTS.labels(method, route, str(status)))
            if len(self._series) < MAX_KEPT_SERIES:
                self._series[key] = series
        return series


class _Snapshot(Collector):
    """Gauges read from the database for one scrape."""

    def __init__(self, depth: dict[str, int], online: int, processing: int) -> None:
        self._depth, self._online, self._processing = depth, online, processing

    def collect(self) -> Any:
        depth = GaugeMetricFamily(
            "openhorde_queue_depth",
            "Images waiting for a worker, per requested model ('any': no model named).",
            labels=["model"],
        )
        for model, waiting in sorted(self._depth.items()):
            depth.add_metric([model], waiting)
        yield depth
        yield GaugeMetricFamily("openhorde_workers_online", "Workers that popped recently.", value=self._online)
        yield GaugeMetricFamily(
            "openhorde_jobs_processing", "Jobs handed out and not yet finished.", value=self._processing
        )


router = APIRouter(tags=["status"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    db: Database = request.app.state.db
    live_since = time.time() - request.app.state.context.settings.queue.worker_stale_seconds
    async with db.reader() as store:  # reads only: no transaction, and on SQLite no write lock
        depth = await store.stats.queue_depth_by_model()
        gauges = await store.stats.gauges(live_since)
    snapshot = _Snapshot(depth, gauges.workers_online, gauges.jobs_processing)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(snapshot)
    return Response(generate_latest(REGISTRY) + generate_latest(scrape), media_type=CONTENT_TYPE)
