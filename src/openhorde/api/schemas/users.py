"""Bodies of ``/users``, ``/find_user`` and ``/register``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import MAX_KUDOS_AMOUNT, ResponseModel, WireModel
from openhorde.api.schemas.names import Username


class UserKudosDetails(ResponseModel):
    accumulated: float = 0
    gifted: float = 0
    donated: float = 0
    admin: float = 0
    received: float = 0
    recurring: float = 0
    awarded: float = 0
    styled: float = 0


class UsageDetails(ResponseModel):
    megapixelsteps: float
    requests: int


class ContributionsDetails(ResponseModel):
    megapixelsteps: float
    fulfillments: int


class MonthlyKudos(ResponseModel):
    amount: int = 0
    last_received: str | None = None


class UserStyle(ResponseModel):
    name: str
    """``user#id::style::name``."""
    id: str
    type: str


class UserDetails(ResponseModel):
    username: str
    id: int
    kudos: float
    evaluating_kudos: float = 0
    concurrency: int
    worker_invited: int
    moderator: bool
    kudos_details: UserKudosDetails
    worker_count: int
    worker_ids: list[str] | None = None
    sharedkey_ids: list[str] | None = None
    monthly_kudos: MonthlyKudos = Field(default_factory=MonthlyKudos)
    trusted: bool
    flagged: bool
    vpn: bool
    service: bool
    education: bool
    customizer: bool
    special: bool
    deleted: bool
    suspicious: int = 0
    pseudonymous: bool = False
    contact: str | None = None
    admin_comment: str | None = None
    account_age: int
    usage: UsageDetails
    contributions: ContributionsDetails
    # OpenHorde extensions (tiers, part D1); shown to the user themself, moderators and admins only.
    tier: str | None = Field(default=None, description="free, supporter or credits (OpenHorde).")
    supporter_until: float | None = Field(default=None, description="Epoch seconds the Supporter tier lasts until.")
    admin: bool | None = Field(
        default=None, description="Whether the user is an admin (OpenHorde); shown to the user and moderators only."
    )
    styles: list[UserStyle] = Field(
        default_factory=list, description="The user's styles: the public ones, or all to the user and moderators."
    )


class RegisterInput(WireModel):
    username: Username


class RegisteredUser(ResponseModel):
    id: int
    username: str
    apikey: str


class ModifyUserInput(WireModel):
    kudos: float | None = Field(default=None, ge=-MAX_KUDOS_AMOUNT, le=MAX_KUDOS_AMOUNT)
    concurrency: int | None = Field(default=None, ge=0, le=500)
    usage_multiplier: float | None = Field(default=None, ge=0.1, le=10)
    worker_invited: int | None = Field(default=None, ge=0, le=100)
    moderator: bool | None = None
    public_workers: bool | None = None
    monthly_kudos: int | None = None
    username: Username | None = None
    trusted: bool | None = None
    flagged: bool | None = None
    customizer: bool | None = None
    vpn: bool | None = None
    service: bool | None = None
    education: bool | None = None
    special: bool | None = None
    contact: str | None = Field(default=None, max_length=500)
    admin_comment: str | None = Field(default=None, max_length=500)


class SimpleResponse(ResponseModel):
    message: str = "OK"
