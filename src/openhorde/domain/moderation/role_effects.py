"""What roles change in the request and pop paths, where no other module already applies them.

Already applied elsewhere: deleted (``accounts.authenticate``), customizer (``workers._valid_models``),
trusted and moderator (``matching.worker_side``: trusted workers). Here, from the reference (§3.4, §4.6):

- flagged: the workers get 403 ``WorkerFlaggedMaintenance`` on every pop; requests queue at kudos/1000
  priority (−100 when the balance is 10 kudos or less); prompts are rewritten (``prompt_filters``);
- education: requests are forced to ``nsfw=false``, ``censor_nsfw=true``, ``trusted_workers=true`` and
  always cleaned by the prompt filters; setting the role sets the concurrency to 200 (``roles``).
"""

from __future__ import annotations

from typing import Protocol

from openhorde.errors import WorkerFlaggedMaintenance
from openhorde.storage.repositories.accounts import Account

EDUCATION_CONCURRENCY = 200
FLAGGED_PRIORITY_DIVISOR = 1000
FLAGGED_MIN_KUDOS = 10
FLAGGED_LOW_PRIORITY = -100.0


class RequestFlags(Protocol):
    """The request fields the education role forces."""

    nsfw: bool
    censor_nsfw: bool
    trusted_workers: bool


def check_can_pop(user: Account) -> None:
    """A flagged account's workers are kept in maintenance."""
    if user.is_flagged:
        raise WorkerFlaggedMaintenance("This account is flagged; its workers are in maintenance. Contact a moderator.")


def queue_priority(user: Account, balance_cents: int) -> float:
    """A new request's starting priority: the balance in kudos, much lower for flagged accounts."""
    kudos = balance_cents / 100
    if not user.is_flagged:
        return kudos
    return kudos / FLAGGED_PRIORITY_DIVISOR if kudos > FLAGGED_MIN_KUDOS else FLAGGED_LOW_PRIORITY


def apply_request_roles(user: Account, request: RequestFlags) -> None:
    """Force the safety settings education accounts always get."""
    if user.is_education:
        request.nsfw = False
        request.censor_nsfw = True
        request.trusted_workers = True
