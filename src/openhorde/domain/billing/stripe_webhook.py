"""Stripe webhook events: verified with Stripe's own signature check, applied once per event id.

- ``checkout.session.completed`` (and ``checkout.session.async_payment_succeeded``):
  ``mode=subscription`` makes the user (``client_reference_id`` or ``metadata.user_id``) a
  supporter for a month, remembers the Stripe customer, and grants this month's kudos;
  ``mode=payment`` records ``metadata.kudos`` bought as credits under ``stripe:{event id}``.
- ``invoice.paid``: the customer's subscription renewed; supporter until the paid period ends
  (plus a grace), and that period's monthly grant.
- ``customer.subscription.deleted``: the Supporter tier ends now.

Any other type is answered 200 and ignored. A redelivered event (same id) changes nothing.
An event that names no known user is refused (400) and not recorded, so Stripe redelivers it
later: an ``invoice.paid`` that overtook its checkout then finds the customer linked.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.config import Settings
from openhorde.domain import accounts, audit
from openhorde.domain.billing import tiers
from openhorde.errors import StripeEventUnusable, StripeNotConfigured, StripeSignatureInvalid, UserNotFound
from openhorde.storage import billing_queries

log = logging.getLogger(__name__)

RENEWAL_GRACE_SECONDS = 3 * 24 * 3600
"""A paid period lasts this much longer, so Stripe's retries of the next payment don't drop the tier."""
PAID_STATUSES = frozenset({"paid", "no_payment_required"})


class Outcome(StrEnum):
    """What became of one webhook delivery."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def verify(payload: bytes, signature: str | None, secret: str | None) -> dict[str, Any]:
    """The event in ``payload`` if ``signature`` (the ``Stripe-Signature`` header) is valid for ``secret``."""
    if not secret:
        raise StripeNotConfigured()
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise StripeSignatureInvalid(f"Stripe signature check failed: {exc.user_message or exc}") from exc
    except ValueError as exc:  # signed, but not JSON
        raise StripeSignatureInvalid("The Stripe event is not valid JSON.") from exc
    event = json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or "type" not in event:
        raise StripeEventUnusable("The Stripe event has no id or type.")
    return event


def _object(event: dict[str, Any]) -> dict[str, Any]:
    found = (event.get("data") or {}).get("object") or {}
    return found if isinstance(found, dict) else {}


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    found = obj.get("metadata") or {}
    return found if isinstance(found, dict) else {}


async def _user_id(session: AsyncSession, *candidates: object) -> int | None:
    """The first candidate that is the id of an existing, non-anonymous user."""
    for candidate in candidates:
        if candidate is None or not str(candidate).strip().isdigit():
            continue
        try:
            user = await accounts.get_user(session, int(str(candidate).strip()))
        except UserNotFound:
            continue
        if not accounts.is_anonymous(user):
            return user.id
    return None


async def _customer_user(session: AsyncSession, obj: dict[str, Any], *metadata: dict[str, Any]) -> int | None:
    """The user of the object's Stripe customer, or the one its metadata names."""
    customer = obj.get("customer")
    if isinstance(customer, str):
        linked = await billing_queries.user_of_customer(session, customer)
        if linked is not None:
            return linked
    return await _user_id(session, *(m.get("user_id") for m in metadata))


async def _link_customer(session: AsyncSession, user_id: int, obj: dict[str, Any], now: float) -> None:
    row = await billing_queries.supporter_row(session, user_id, now)
    if isinstance(obj.get("customer"), str):
        row.stripe_customer_id = obj["customer"]
    if isinstance(obj.get("subscription"), str):
        row.stripe_subscription_id = obj["subscription"]
    await session.flush()


async def _checkout_completed(session: AsyncSession, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    session_obj = _object(event)
    if session_obj.get("payment_status") not in PAID_STATUSES:
        return Outcome.IGNORED  # an asynchronous payment: its async_payment_succeeded event follows
    meta = _metadata(session_obj)
    user_id = await _user_id(session, session_obj.get("client_reference_id"), meta.get("user_id"))
    if user_id is None:
        raise StripeEventUnusable("The checkout session names no known user (client_reference_id or metadata.user_id).")
    await billing_queries.note_event_user(session, event["id"], user_id)
    if session_obj.get("mode") == "subscription":
        await _link_customer(session, user_id, session_obj, now)
        until = await tiers.extend_supporter(
            session, settings, user_id, now + tiers.SUPPORTER_MONTH_SECONDS, now, tiers.month_key(now)
        )
        details = {"event": event["id"], "until": until}
        await audit.record(session, None, "stripe.supporter_on", "user", user_id, details, now=now)
        return Outcome.APPLIED
    if session_obj.get("mode") == "payment":
        try:
            kudos = float(meta.get("kudos", ""))
        except ValueError as exc:
            raise StripeEventUnusable("The one-off checkout session has no metadata.kudos.") from exc
        memo = f"bought via Stripe session {session_obj.get('id', '?')}"
        await tiers.add_credits(session, user_id, kudos, f"stripe:{event['id']}", memo, now)
        return Outcome.APPLIED
    return Outcome.IGNORED


def _invoice_period(invoice: dict[str, Any]) -> tuple[float, float]:
    """The subscription period an invoice pays for (its first line's), else the invoice's own period."""
    lines = (invoice.get("lines") or {}).get("data") or []
    period = (lines[0].get("period") if lines and isinstance(lines[0], dict) else None) or {}
    start = period.get("start", invoice.get("period_start"))
    end = period.get("end", invoice.get("period_end"))
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        raise StripeEventUnusable("The invoice has no period.")
    return float(start), float(end)


def _subscription_metadata(invoice: dict[str, Any]) -> dict[str, Any]:
    details = invoice.get("subscription_details") or (invoice.get("parent") or {}).get("subscription_details") or {}
    return _metadata(details) if isinstance(details, dict) else {}


async def _invoice_paid(session: AsyncSession, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    invoice = _object(event)
    user_id = await _customer_user(session, invoice, _subscription_metadata(invoice), _metadata(invoice))
    if user_id is None:
        raise StripeEventUnusable("The invoice's customer is not linked to a user yet; Stripe will redeliver it.")
    await billing_queries.note_event_user(session, event["id"], user_id)
    await _link_customer(session, user_id, invoice, now)
    start, end = _invoice_period(invoice)
    until = await tiers.extend_supporter(
        session, settings, user_id, end + RENEWAL_GRACE_SECONDS, now, tiers.month_key(start)
    )
    details = {"event": event["id"], "until": until}
    await audit.record(session, None, "stripe.supporter_renewed", "user", user_id, details, now=now)
    return Outcome.APPLIED


async def _subscription_deleted(session: AsyncSession, event: dict[str, Any], now: float) -> Outcome:
    subscription = _object(event)
    user_id = await _customer_user(session, subscription, _metadata(subscription))
    if user_id is None:
        return Outcome.IGNORED  # nobody to turn off
    await billing_queries.note_event_user(session, event["id"], user_id)
    await tiers.end_supporter(session, user_id, now)
    await audit.record(session, None, "stripe.supporter_off", "user", user_id, {"event": event["id"]})
    return Outcome.APPLIED


HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "invoice.paid",
        "customer.subscription.deleted",
    }
)


async def handle(session: AsyncSession, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    """Apply one verified event, once: a redelivery of the same event id is a ``duplicate``."""
    kind = str(event["type"])
    if kind not in HANDLED:
        return Outcome.IGNORED
    if not await billing_queries.claim_event(session, event["id"], kind, now):
        return Outcome.DUPLICATE
    if kind == "invoice.paid":
        outcome = await _invoice_paid(session, settings, event, now)
    elif kind == "customer.subscription.deleted":
        outcome = await _subscription_deleted(session, event, now)
    else:
        outcome = await _checkout_completed(session, settings, event, now)
    log.info("stripe event %s (%s): %s", event["id"], kind, outcome)
    return outcome
