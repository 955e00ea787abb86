"""Sending the webhook outbox: a loop in every server process.

Each pass claims due rows (``WebhookRepository.claim_due``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
conditional update on both engines) for a claim token and a lease, commits, POSTs them, then records each
outcome in the transaction that ends the claim: delivered, due again after a backoff, or failed after the
last attempt. A row is sent by one process at a time; only a crash between a 2xx answer and that commit
(or a POST outlasting the lease) can send it again, with the same ``X-OpenHorde-Delivery`` id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from openhorde import __version__
from openhorde.domain import webhooks
from openhorde.domain.context import HordeContext
from openhorde.net.addresses import AddressNotAllowed, AddressPolicy, HostNotFound
from openhorde.net.fetch import guarded_client
from openhorde.storage.db import Database
from openhorde.storage.repositories.webhooks import ClaimedDelivery
from openhorde.storage.store import Store

log = logging.getLogger(__name__)

BATCH = 50
"""Rows one pass claims at most."""
LEASE_MARGIN_SECONDS = 30.0
"""A claim lasts the POST timeout plus this, so it outlives any POST that the timeout allows."""
BACKOFF_JITTER = 0.5
"""A retry's wait is shortened by up to this share, at random."""
ENDED_RETENTION_SECONDS = 24 * 3600
"""Delivered and failed rows are deleted this long after their event."""
PURGE_EVERY_PASSES = 300
ERROR_CHARS = 1000


@dataclass(frozen=True)
class Outcome:
    """The result of one POST: ``None`` error means a 2xx answer."""

    delivery_id: str
    attempts_before: int
    error: str | None


class WebhookSender:
    """Claims, sends and records webhook deliveries for one server process."""

    def __init__(self, db: Database, ctx: HordeContext, client: httpx.AsyncClient | None = None) -> None:
        self.db = db
        self.ctx = ctx
        self.settings = ctx.settings
        self.secret = webhooks.signing_secret(ctx.settings, ctx.secret)
        # Redirects are not followed: a webhook answers our POST itself. Every connection goes to an address
        # checked as it connects (public only, unless the operator allows private ones).
        self._client = client or guarded_client(
            AddressPolicy(allow_private=ctx.settings.limits.allow_private_addresses),
            max_redirects=0,
            headers={"User-Agent": f"OpenHorde-Webhook/{__version__}"},
        )
        self._passes = 0

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def run_forever(self) -> None:
        """Deliver due rows until cancelled; a full batch goes on at once, else it waits the poll interval."""
        while True:
            claimed = 0
            try:
                claimed = await self.deliver_due()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("webhook delivery pass failed")
            if claimed < BATCH:
                await asyncio.sleep(self.settings.webhooks.webhook_poll_interval_seconds)

    async def deliver_due(self, now: float | None = None) -> int:
        """One pass: claim due rows, POST them concurrently, record the outcomes; returns how many it claimed."""
        moment = now or time.time()
        token = str(uuid.uuid4())
        until = moment + self.settings.webhooks.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        async with self.db.store() as store:
            rows = await store.webhooks.claim_due(moment, until, token, BATCH)
            self._passes += 1
            if self._passes % PURGE_EVERY_PASSES == 0:
                await store.webhooks.purge_ended(moment - ENDED_RETENTION_SECONDS)
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._send(row) for row in rows))
        async with self.db.store() as store:
            for outcome in outcomes:
                await self._record(store, token, outcome, time.time())
        return len(rows)

    async def _send(self, row: ClaimedDelivery) -> Outcome:
        delivery_id, url, body, attempts = row.id, row.url, row.body, row.attempts
        problem = webhooks.url_problem(self.settings, url)
        if problem is not None:
            return Outcome(delivery_id, self.settings.webhooks.webhook_max_attempts, problem)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            webhooks.TIMESTAMP_HEADER: timestamp,
            webhooks.SIGNATURE_HEADER: webhooks.sign(self.secret, timestamp, body),
            webhooks.DELIVERY_HEADER: delivery_id,
            webhooks.EVENT_HEADER: _event_of(body),
        }
        try:
            async with asyncio.timeout(self.settings.webhooks.webhook_timeout_seconds):
                response = await self._client.post(
                    url, content=body.encode(), headers=headers, timeout=self.settings.webhooks.webhook_timeout_seconds
                )
        except (AddressNotAllowed, HostNotFound) as error:  # the name now points somewhere it may not go
            return Outcome(delivery_id, self.settings.webhooks.webhook_max_attempts, str(error)[:ERROR_CHARS])
        except (TimeoutError, httpx.HTTPError) as error:
            return Outcome(delivery_id, attempts, f"{type(error).__name__}: {error}"[:ERROR_CHARS])
        if 200 <= response.status_code < 300:
            return Outcome(delivery_id, attempts, None)
        return Outcome(delivery_id, attempts, f"HTTP {response.status_code}: {response.text[:200]}"[:ERROR_CHARS])

    async def _record(self, store: Store, token: str, outcome: Outcome, now: float) -> None:
        settings = self.settings
        failed_attempts = outcome.attempts_before + 1
        if outcome.error is None:
            values: dict[str, Any] = {"next_attempt_at": None, "delivered_at": now, "failed_at": None}
        elif failed_attempts >= settings.webhooks.webhook_max_attempts:
            values = {"next_attempt_at": None, "delivered_at": None, "failed_at": now}
            log.warning("webhook %s failed for good: %s", outcome.delivery_id, outcome.error)
        else:
            wait = webhooks.backoff_seconds(
                failed_attempts,
                settings.webhooks.webhook_backoff_seconds,
                settings.webhooks.webhook_backoff_max_seconds,
                BACKOFF_JITTER,
                random.random(),
            )
            values = {"next_attempt_at": now + wait, "delivered_at": None, "failed_at": None}
        ours = await store.webhooks.finish_attempt(outcome.delivery_id, token, last_error=outcome.error, **values)
        if not ours:
            log.warning("webhook %s: the claim ran out before its outcome was recorded", outcome.delivery_id)


def _event_of(body: str) -> str:
    """The ``event`` of a stored body (bodies start ``{"event":"...``)."""
    prefix = '{"event":"'
    return body[len(prefix) : body.index('"', len(prefix))] if body.startswith(prefix) else ""


async def run(db: Database, ctx: HordeContext) -> None:
    """This process's delivery loop, until cancelled (started in the app's lifespan)."""
    sender = WebhookSender(db, ctx)
    try:
        await sender.run_forever()
    finally:
        await sender.close()
