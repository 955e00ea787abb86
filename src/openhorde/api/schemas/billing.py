"""Bodies of the tier and Stripe endpoints (OpenHorde extensions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from openhorde.api.schemas.common import MAX_KUDOS_AMOUNT, ResponseModel, WireModel

MAX_SUPPORTER_MONTHS = 120


class SupporterInput(WireModel):
    months: int = Field(default=1, ge=1, le=MAX_SUPPORTER_MONTHS, description="Months of Supporter tier to add.")


class CreditsInput(WireModel):
    kudos: float = Field(gt=0, le=MAX_KUDOS_AMOUNT, description="Kudos bought.")
    reference: str = Field(
        min_length=1,
        max_length=150,
        description="The payment's reference (an invoice number...); a second grant with it changes nothing.",
    )


class TierOut(ResponseModel):
    id: int
    tier: Literal["free", "supporter", "credits"]
    supporter_until: float | None = Field(default=None, description="Epoch seconds the Supporter tier lasts until.")
    credits_bought: float = 0


class CreditsOut(TierOut):
    recorded: bool = Field(description="False when this reference was recorded before (nothing changed).")


class StripeWebhookOut(ResponseModel):
    received: bool = True
    outcome: Literal["applied", "duplicate", "ignored"]
