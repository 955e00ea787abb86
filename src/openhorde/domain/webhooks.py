"""Webhooks: the events a request's ``webhook`` URL receives, how they are signed, and which URLs may get them.

Events (JSON bodies, each with ``event``):

* ``image``: one per finished image, the AI Horde's payload ``{img, seed, worker_id, worker_name, model,
  id, censored, gen_metadata, request, kudos}`` (``id``: the job, ``request``: the request, ``img``: a
  presigned download URL, ``kudos``: the image's price);
* ``done`` and ``faulted`` (ours): the request ended, with its counts (and ``fault_reason``);
* ``form``: one per form an alchemist delivered, the AI Horde's alchemy payload ``{form, state, result,
  worker_id, request, id, kudos}``.

An event is written to the outbox (``webhook_deliveries``) in the transaction that makes it happen, under a
unique key (``<job id>:image``, ``<request id>:done`` ...), so it is recorded once however many processes
notice it. ``domain/webhook_delivery.py`` sends the outbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from openhorde.config import Settings
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos.ledger import cents_to_kudos
from openhorde.domain.queue.blob_keys import image_key
from openhorde.errors import ValidationFailed
from openhorde.net.addresses import AddressNotAllowed, AddressPolicy, HostNotFound
from openhorde.storage.repositories.deliveries import Delivery
from openhorde.storage.store import Store

SIGNATURE_HEADER = "X-OpenHorde-Signature"
TIMESTAMP_HEADER = "X-OpenHorde-Timestamp"
DELIVERY_HEADER = "X-OpenHorde-Delivery"
EVENT_HEADER = "X-OpenHorde-Event"
_DERIVATION_LABEL = b"openhorde webhook signing"
_LOOPBACK_NAMES = frozenset({"localhost", "0.0.0.0", "::"})


def signing_secret(settings: Settings, server_secret: str) -> str:
    """The webhook signing secret: ``OPENHORDE_WEBHOOK_SECRET``, else one derived from the server secret
    (hex of HMAC-SHA256(server secret, "openhorde webhook signing")), the same in every server process."""
    if settings.webhooks.webhook_secret:
        return settings.webhooks.webhook_secret
    return hmac.new(server_secret.encode(), _DERIVATION_LABEL, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, body: str) -> str:
    """The signature header's value: ``sha256=`` + hex HMAC-SHA256(secret, ``f"{timestamp}.{body}"``)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def backoff_seconds(failed_attempts: int, base: float, cap: float, jitter: float, draw: float) -> float:
    """Wait after ``failed_attempts`` failed tries: ``base · 2^(failed_attempts − 1)``, at most ``cap``, less a
    random share of up to ``jitter`` (``draw`` in [0, 1)) so retries of many rows spread out."""
    exponent = min(max(failed_attempts - 1, 0), 60)
    delay = min(cap, base * 2.0**exponent)
    return delay * (1.0 - jitter * draw)


def _host_port(url: str) -> tuple[str, int | None, str]:
    """(host, port, scheme) of ``url``; an empty host or a ``None`` port when it has none that makes sense."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1/": an unclosed IPv6 bracket
        return "", None, ""
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return (parts.hostname or "").lower().rstrip("."), port, parts.scheme.lower()


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_allowed(host: str, allowed: str) -> bool:
    entries = [entry.strip().lower() for entry in allowed.split(",") if entry.strip()]
    if not entries:
        return True
    for entry in entries:
        suffix = entry.removeprefix("*")
        if host == entry or (suffix.startswith(".") and host.endswith(suffix)):
            return True
    return False


def url_problem(settings: Settings, url: str) -> str | None:
    """Why ``url`` may not receive webhooks (not http(s), a host outside ``webhook_allowed_hosts``, this
    server itself), or ``None`` when it may."""
    host, port, scheme = _host_port(url)
    if scheme not in ("http", "https") or not host or port is None:
        return "A webhook must be an http:// or https:// URL with a host."
    if not _host_allowed(host, settings.webhooks.webhook_allowed_hosts):
        return f"Webhooks to {host} are not allowed on this horde."
    own_host, own_port, _ = _host_port(settings.resolved_public_url)
    if (host, port) == (own_host, own_port) or (
        port == settings.port and (host == settings.host.lower() or _is_loopback(host))
    ):
        return "A webhook cannot point at this horde itself."
    return None


async def check_url(ctx: HordeContext, url: str | None) -> None:
    """Refuse a request whose webhook may not receive deliveries (``ValidationError``).

    Besides the rules of ``url_problem``, a host that resolves must resolve only to addresses the horde may
    reach (public ones, unless ``allow_private_addresses``). A name that does not resolve yet is accepted:
    deliveries resolve and check the address again as they connect, so neither a name that appears later nor
    one that changes its answer reaches anything the check here would have refused.
    """
    if url is None:
        return
    problem = url_problem(ctx.settings, url)
    if problem is not None:
        raise ValidationFailed(problem)
    host, port, _scheme = _host_port(url)
    policy = AddressPolicy(allow_private=ctx.settings.limits.allow_private_addresses)
    try:
        async with asyncio.timeout(ctx.settings.webhooks.webhook_timeout_seconds):
            await policy.resolve(host, port or 0)
    except AddressNotAllowed as exc:
        raise ValidationFailed(
            f"The webhook is refused: {exc}; this horde sends webhooks to public addresses only."
        ) from exc
    except (HostNotFound, TimeoutError):
        return


async def _add(store: Store, key: str, request_id: str, event: str, url: str, body: dict[str, Any], now: float) -> None:
    payload = json.dumps({"event": event, **body}, separators=(",", ":"))
    await store.webhooks.add(str(uuid.uuid4()), key, request_id, event, url, payload, now)


async def image_finished(
    store: Store,
    ctx: HordeContext,
    delivery: Delivery,
    seed: int,
    censored: bool,
    gen_metadata: list[dict[str, Any]],
    now: float,
) -> None:
    """After a submit: queue the ``image`` event, and ``done`` when it was the request's last image.
    Nothing when the request has no webhook."""
    if delivery.webhook is None:
        return
    body = {
        "img": ctx.blobs.presign("GET", image_key(delivery.job_id), now),
        "seed": str(seed),
        "worker_id": delivery.worker_id,
        "worker_name": delivery.worker_name,
        "model": delivery.model,
        "id": delivery.job_id,
        "censored": censored,
        "gen_metadata": gen_metadata,
        "request": delivery.request_id,
        "kudos": cents_to_kudos(delivery.price_cents),
    }
    await _add(store, f"{delivery.job_id}:image", delivery.request_id, "image", delivery.webhook, body, now)
    await requests_ended(store, [delivery.request_id], now)


async def form_finished(
    store: Store, form_id: str, interrogation_id: str, url: str, body: dict[str, Any], now: float
) -> None:
    """After an alchemist's submit: queue the ``form`` event (``body``: the form's status and reward)."""
    await _add(store, f"{form_id}:form", interrogation_id, "form", url, body, now)


async def requests_ended(store: Store, request_ids: Sequence[str], now: float) -> None:
    """Queue ``done`` or ``faulted`` for those of these requests that have ended so and have a webhook; an
    event already queued is not queued again."""
    if not request_ids:
        return
    for ended in await store.webhooks.ended_with_webhook(request_ids):
        body: dict[str, Any] = {
            "request": ended.id,
            "state": ended.state,
            "finished": ended.n_finished,
            "faulted_jobs": ended.n_faulted,
            "kudos": cents_to_kudos(ended.charged_cents),
        }
        if ended.state == "faulted":
            body["fault_reason"] = ended.fault_reason
        await _add(store, f"{ended.id}:{ended.state}", ended.id, ended.state, ended.webhook, body, now)
