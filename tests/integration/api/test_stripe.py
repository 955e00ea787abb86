"""The Stripe webhook through HTTP: signed with the library's own scheme, applied once per event id.

No call ever reaches Stripe: the tests sign their own events with a test secret, as Stripe does
(``t=…,v1=HMAC-SHA256(secret, "{t}.{payload}")``).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe
from sqlalchemy import select

from openhorde.storage.tables import KudosTransaction
from tests.live_server import Account, Horde

SECRET = "whsec_test_openhorde"
WEBHOOK = "/api/v2/stripe/webhook"
MONTH = 30 * 24 * 3600


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind, "data": {"object": obj}}


async def deliver(horde: Horde, payload: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    return await horde.client.post(
        WEBHOOK, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


async def find_user(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def second_day_of_next_month() -> float:
    """An instant safely inside next month (UTC), whatever today is."""
    today = datetime.now(UTC)
    return (today.replace(day=1) + timedelta(days=32)).replace(day=2, hour=0).timestamp()


def subscription_checkout(account: Account, customer: str = "cus_1") -> dict[str, Any]:
    return event(
        "checkout.session.completed",
        {
            "id": "cs_sub_1",
            "object": "checkout.session",
            "mode": "subscription",
            "payment_status": "paid",
            "client_reference_id": str(account.id),
            "customer": customer,
            "subscription": "sub_1",
        },
    )


def invoice_paid(customer: str, period_start: float, event_id: str | None = None) -> dict[str, Any]:
    period = {"start": int(period_start), "end": int(period_start + MONTH)}
    return event(
        "invoice.paid",
        {"id": "in_1", "object": "invoice", "customer": customer, "lines": {"data": [{"period": period}]}},
        event_id,
    )


async def test_the_endpoint_is_off_without_a_secret_and_refuses_bad_signatures(horde: Horde) -> None:
    account = await horde.register("fan")
    off = await deliver(horde, subscription_checkout(account))
    assert off.status_code == 404 and off.json()["rc"] == "StripeNotConfigured", off.text

    horde.settings.economy.stripe_webhook_secret = SECRET
    forged = await deliver(horde, subscription_checkout(account), secret="whsec_someone_else")
    assert forged.status_code == 400 and forged.json()["rc"] == "StripeSignatureInvalid", forged.text
    unsigned = await horde.client.post(WEBHOOK, content=json.dumps(subscription_checkout(account)))
    assert unsigned.status_code == 400 and unsigned.json()["rc"] == "StripeSignatureInvalid"
    assert (await find_user(horde, account))["tier"] == "free"


async def test_a_subscription_makes_a_supporter_renews_with_one_grant_and_ends(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    fan = await horde.register("fan")
    monthly = horde.settings.economy.supporter_monthly_kudos

    checkout = await deliver(horde, subscription_checkout(fan, customer="cus_fan"))
    assert checkout.status_code == 200 and checkout.json()["outcome"] == "applied", checkout.text
    seen = await find_user(horde, fan)
    assert seen["tier"] == "supporter" and seen["supporter_until"] > time.time() + MONTH - 60
    assert seen["kudos"] == monthly  # this month's grant

    # Next month's invoice (found by the remembered customer id): the tier runs on, one more grant.
    next_month = second_day_of_next_month()
    renewal = invoice_paid("cus_fan", next_month, event_id="evt_renewal")
    paid = await deliver(horde, renewal)
    assert paid.status_code == 200 and paid.json()["outcome"] == "applied", paid.text
    seen = await find_user(horde, fan)
    assert seen["kudos"] == 2 * monthly and seen["supporter_until"] >= next_month + MONTH
    replay = await deliver(horde, renewal)
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    # Another event for the same month (a retried invoice) does not grant twice either.
    assert (await deliver(horde, invoice_paid("cus_fan", next_month + 3600))).json()["outcome"] == "applied"
    assert (await find_user(horde, fan))["kudos"] == 2 * monthly

    deleted = event("customer.subscription.deleted", {"id": "sub_1", "object": "subscription", "customer": "cus_fan"})
    gone = await deliver(horde, deleted)
    assert gone.status_code == 200 and gone.json()["outcome"] == "applied"
    seen = await find_user(horde, fan)
    assert seen["tier"] == "free" and seen["kudos"] == 2 * monthly  # granted kudos stay

    async with horde.db.unit_of_work() as session:
        references = set(
            await session.scalars(select(KudosTransaction.reference).where(KudosTransaction.kind == "supporter"))
        )
    assert len(references) == 2 and all(r.startswith(f"supporter:{fan.id}:") for r in references)
    log = await horde.client.get("/api/v2/audit", headers=(admin := await horde.register("boss")).headers)
    assert log.status_code == 403  # not an admin yet
    await horde.make_admin(admin)
    actions = [e["action"] for e in (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()["entries"]]
    assert actions == [
        "stripe.supporter_off",
        "stripe.supporter_renewed",
        "stripe.supporter_renewed",
        "stripe.supporter_on",
    ]


async def test_an_invoice_for_an_unknown_customer_is_refused_so_stripe_redelivers_it(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    fan = await horde.register("fan")
    early = invoice_paid("cus_later", time.time(), event_id="evt_early")
    refused = await deliver(horde, early)
    assert refused.status_code == 400 and refused.json()["rc"] == "StripeEventUnusable", refused.text
    assert (await find_user(horde, fan))["tier"] == "free"
    # After the checkout links the customer, the redelivered invoice applies (it was not recorded as handled).
    assert (await deliver(horde, subscription_checkout(fan, customer="cus_later"))).status_code == 200
    redelivered = await deliver(horde, early)
    assert redelivered.status_code == 200 and redelivered.json()["outcome"] == "applied", redelivered.text


async def test_a_one_off_payment_buys_credits_once(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    buyer = await horde.register("buyer")
    paid = event(
        "checkout.session.completed",
        {
            "id": "cs_pay_1",
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "metadata": {"user_id": str(buyer.id), "kudos": "2500"},
        },
        event_id="evt_credits_1",
    )
    first = await deliver(horde, paid)
    assert first.status_code == 200 and first.json()["outcome"] == "applied", first.text
    again = await deliver(horde, paid)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"

    seen = await find_user(horde, buyer)
    assert seen["kudos"] == 2500 and seen["tier"] == "credits"
    async with horde.db.unit_of_work() as session:
        rows = list(await session.execute(select(KudosTransaction.kind, KudosTransaction.reference)))
    assert [tuple(r) for r in rows] == [("credits", "stripe:evt_credits_1")]

    no_kudos = event("checkout.session.completed", {**paid["data"]["object"], "metadata": {"user_id": str(buyer.id)}})
    refused = await deliver(horde, no_kudos)
    assert refused.status_code == 400 and refused.json()["rc"] == "StripeEventUnusable"
    assert (await find_user(horde, buyer))["kudos"] == 2500


async def test_unknown_event_types_are_acknowledged_and_ignored(horde: Horde) -> None:
    horde.settings.economy.stripe_webhook_secret = SECRET
    response = await deliver(horde, event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert response.status_code == 200 and response.json() == {"received": True, "outcome": "ignored"}
