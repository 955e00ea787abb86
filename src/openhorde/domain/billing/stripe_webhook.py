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
import math
import re
from enum import StrEnum
from typing import Any

import stripe

from openhorde.config import Settings
from openhorde.domain import accounts, audit, text
from openhorde.domain.billing import tiers
from openhorde.domain.kudos.ledger import MAX_KUDOS_AMOUNT
from openhorde.errors import StripeEventUnusable, StripeNotConfigured, StripeSignatureInvalid, UserNotFound
from openhorde.storage.store import Store

log = logging.getLogger(__name__)

RENEWAL_GRACE_SECONDS = 3 * 24 * 3600
"""A paid period lasts this much longer, so Stripe's retries of the next payment don't drop the tier."""
PAID_STATUSES = frozenset({"paid", "no_payment_required"})
MAX_ID_DIGITS = 18
"""Digits of a user id read from an event; more name nobody (and would overflow the column)."""
MAX_STRIPE_ID_CHARS = 190
"""Longest Stripe id (event, customer, subscription) taken: it fits every column it goes into, the ledger's
``stripe:{event id}`` reference included. Stripe's own ids are far shorter."""
LATEST_TIMESTAMP = 32_503_680_000.0
"""Epoch seconds of the year 3000: a Stripe period ending later is not a real one."""
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?")
"""Kudos in ``metadata.kudos``, which Stripe keeps as text: plain digits and at most two decimals, so "nan",
"inf", "1e400" and "-5" are not read as numbers."""


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
    if not isinstance(event, dict) or _stripe_id(event.get("id")) is None or "type" not in event:
        raise StripeEventUnusable("The Stripe event has no id or type.")
    text.check_storable(event, "event")  # its ids and metadata are stored
    return event


def _kudos_bought(value: object) -> float:
    """The kudos a one-off payment buys, from its ``metadata.kudos``: a positive number up to the grant bound.

    Anything else (NaN, infinity, a negative or huge amount, a bool, null, a list) refuses the event with 400,
    so a malformed purchase moves no kudos and Stripe shows the failed delivery.
    """
    unreadable = StripeEventUnusable("The one-off checkout session has no number in metadata.kudos.")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise unreadable  # True would be read as 1 kudo; null, a list or an object as nothing
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        raise unreadable
    kudos = float(value)
    if not math.isfinite(kudos) or not 0 < kudos <= MAX_KUDOS_AMOUNT:
        raise StripeEventUnusable(f"metadata.kudos must be more than 0 and at most {MAX_KUDOS_AMOUNT} kudos.")
    return kudos


def _timestamp(value: object) -> float:
    """An epoch-seconds instant of an event: a finite, non-negative number before the year 3000."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= LATEST_TIMESTAMP:
        raise StripeEventUnusable("The invoice has no valid period.")
    return float(value)  # NaN fails the range check above; so does infinity


def _stripe_id(value: object) -> str | None:
    """``value`` if it can be a Stripe id (text of 1 to ``MAX_STRIPE_ID_CHARS`` characters), else None."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_STRIPE_ID_CHARS else None


def _mapping(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a field of the wrong type counts as missing."""
    return value if isinstance(value, dict) else {}


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return _mapping(_mapping(event.get("data")).get("object"))


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return _mapping(obj.get("metadata"))


async def _user_id(store: Store, *candidates: object) -> int | None:
    """The first candidate that is the id of an existing, non-anonymous user."""
    for candidate in candidates:
        digits = str(candidate).strip() if isinstance(candidate, str | int) and not isinstance(candidate, bool) else ""
        # ASCII digits of an id's length only: int() refuses "²" and numbers of thousands of digits.
        if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_ID_DIGITS):
            continue
        try:
            user = await accounts.get_user(store, int(digits))
        except UserNotFound:
            continue
        if not accounts.is_anonymous(user):
            return user.id
    return None


async def _customer_user(store: Store, obj: dict[str, Any], *metadata: dict[str, Any]) -> int | None:
    """The user of the object's Stripe customer, or the one its metadata names."""
    customer = _stripe_id(obj.get("customer"))
    if customer is not None:
        linked = await store.billing.user_of_customer(customer)
        if linked is not None:
            return linked
    return await _user_id(store, *(m.get("user_id") for m in metadata))


async def _link_customer(store: Store, user_id: int, obj: dict[str, Any], now: float) -> None:
    """Remember the object's Stripe customer and subscription (those it names) as paying for the user's tier."""
    customer, subscription = _stripe_id(obj.get("customer")), _stripe_id(obj.get("subscription"))
    await store.billing.link_customer(user_id, customer, subscription, now)


async def _checkout_completed(store: Store, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    session_obj = _object(event)
    if session_obj.get("payment_status") not in PAID_STATUSES:
        return Outcome.IGNORED  # an asynchronous payment: its async_payment_succeeded event follows
    meta = _metadata(session_obj)
    user_id = await _user_id(store, session_obj.get("client_reference_id"), meta.get("user_id"))
    if user_id is None:
        raise StripeEventUnusable("The checkout session names no known user (client_reference_id or metadata.user_id).")
    await store.billing.note_event_user(event["id"], user_id)
    if session_obj.get("mode") == "subscription":
        await _link_customer(store, user_id, session_obj, now)
        until = await tiers.extend_supporter(
            store, settings, user_id, now + tiers.SUPPORTER_MONTH_SECONDS, now, tiers.month_key(now)
        )
        details = {"event": event["id"], "until": until}
        await audit.record(store, None, "stripe.supporter_on", "user", user_id, details, now=now)
        return Outcome.APPLIED
    if session_obj.get("mode") == "payment":
        kudos = _kudos_bought(meta.get("kudos"))
        memo = f"bought via Stripe session {_stripe_id(session_obj.get('id')) or '?'}"
        await tiers.add_credits(store, user_id, kudos, f"stripe:{event['id']}", memo, now)
        return Outcome.APPLIED
    return Outcome.IGNORED


def _invoice_period(invoice: dict[str, Any]) -> tuple[float, float]:
    """The subscription period an invoice pays for (its first line's), else the invoice's own period."""
    lines = _mapping(invoice.get("lines")).get("data")
    first_line = _mapping(lines[0]) if isinstance(lines, list) and lines else {}
    period = _mapping(first_line.get("period"))
    start = period.get("start", invoice.get("period_start"))
    end = period.get("end", invoice.get("period_end"))
    return _timestamp(start), _timestamp(end)


def _subscription_metadata(invoice: dict[str, Any]) -> dict[str, Any]:
    details = invoice.get("subscription_details") or _mapping(invoice.get("parent")).get("subscription_details")
    return _metadata(_mapping(details))


async def _invoice_paid(store: Store, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    invoice = _object(event)
    user_id = await _customer_user(store, invoice, _subscription_metadata(invoice), _metadata(invoice))
    if user_id is None:
        raise StripeEventUnusable("The invoice's customer is not linked to a user yet; Stripe will redeliver it.")
    await store.billing.note_event_user(event["id"], user_id)
    await _link_customer(store, user_id, invoice, now)
    start, end = _invoice_period(invoice)
    until = await tiers.extend_supporter(
        store, settings, user_id, end + RENEWAL_GRACE_SECONDS, now, tiers.month_key(start)
    )
    details = {"event": event["id"], "until": until}
    await audit.record(store, None, "stripe.supporter_renewed", "user", user_id, details, now=now)
    return Outcome.APPLIED


async def _subscription_deleted(store: Store, event: dict[str, Any], now: float) -> Outcome:
    subscription = _object(event)
    user_id = await _customer_user(store, subscription, _metadata(subscription))
    if user_id is None:
        return Outcome.IGNORED  # nobody to turn off
    await store.billing.note_event_user(event["id"], user_id)
    await tiers.end_supporter(store, user_id, now)
    await audit.record(store, None, "stripe.supporter_off", "user", user_id, {"event": event["id"]})
    return Outcome.APPLIED


HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "invoice.paid",
        "customer.subscription.deleted",
    }
)


async def handle(store: Store, settings: Settings, event: dict[str, Any], now: float) -> Outcome:
    """Apply one verified event, once: a redelivery of the same event id is a ``duplicate``."""
    kind = str(event["type"])
    if kind not in HANDLED:
        return Outcome.IGNORED
    if not await store.billing.claim_event(event["id"], kind, now):
        return Outcome.DUPLICATE
    if kind == "invoice.paid":
        outcome = await _invoice_paid(store, settings, event, now)
    elif kind == "customer.subscription.deleted":
        outcome = await _subscription_deleted(store, event, now)
    else:
        outcome = await _checkout_completed(store, settings, event, now)
    log.info("stripe event %s (%s): %s", event["id"], kind, outcome)
    return outcome
