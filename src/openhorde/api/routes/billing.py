"""Tiers (Supporter, Credits) and the Stripe webhook: OpenHorde extensions."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Request

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.billing import CreditsInput, CreditsOut, StripeWebhookOut, SupporterInput, TierOut
from openhorde.domain import accounts
from openhorde.domain.billing import stripe_webhook, tiers

router = APIRouter(tags=["tiers"])


def _tier_out(user_id: int, info: tiers.TierInfo) -> TierOut:
    return TierOut(
        id=user_id, tier=info.tier.value, supporter_until=info.supporter_until, credits_bought=info.credits_bought
    )


@router.put("/users/{user_id}/supporter", response_model=TierOut, summary="Make a user a supporter (admin; OpenHorde)")
async def grant_supporter(
    user_id: int, body: SupporterInput, store: StoreDep, ctx: ContextDep, actor: ApiUser
) -> TierOut:
    target = await accounts.get_user(store, user_id)
    return _tier_out(user_id, await tiers.grant_supporter(store, ctx.settings, actor, target, body.months))


@router.delete(
    "/users/{user_id}/supporter", response_model=TierOut, summary="End a user's Supporter tier (admin; OpenHorde)"
)
async def revoke_supporter(user_id: int, store: StoreDep, actor: ApiUser) -> TierOut:
    target = await accounts.get_user(store, user_id)
    return _tier_out(user_id, await tiers.revoke_supporter(store, actor, target))


@router.post("/users/{user_id}/credits", response_model=CreditsOut, summary="Record kudos bought (admin; OpenHorde)")
async def grant_credits(user_id: int, body: CreditsInput, store: StoreDep, actor: ApiUser) -> CreditsOut:
    target = await accounts.get_user(store, user_id)
    recorded = await tiers.grant_credits(store, actor, target, body.kudos, body.reference)
    info = await tiers.tier_of(store, target)
    return CreditsOut(**_tier_out(user_id, info).model_dump(), recorded=recorded)


@router.post(
    "/stripe/webhook",
    response_model=StripeWebhookOut,
    responses=errors(404),  # 404: Stripe is not configured
    summary="Stripe events: subscriptions (Supporter tier) and one-off payments (credits) (OpenHorde)",
)
async def stripe_events(
    request: Request,
    store: StoreDep,
    ctx: ContextDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> StripeWebhookOut:
    event = stripe_webhook.verify(await request.body(), stripe_signature, ctx.settings.economy.stripe_webhook_secret)
    outcome = await stripe_webhook.handle(store, ctx.settings, event, time.time())
    return StripeWebhookOut(outcome=outcome.value)
