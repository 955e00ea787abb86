"""Names in request bodies, trimmed of surrounding whitespace *before* their length is checked.

So "  ab  " is the 2-character name "ab" and a padded "x" cannot pass a minimum; the trimmed value is what the
route receives. The domain trims and checks again (``domain/names.py``) for callers that skip these bodies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from openhorde.domain import accounts, sharedkeys, teams, workers


def trimmed(min_length: int, max_length: int) -> StringConstraints:
    """A string's bounds, applied to the string without its surrounding whitespace."""
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Username = Annotated[str, trimmed(2, accounts.USERNAME_MAX_LENGTH)]
WorkerName = Annotated[str, trimmed(1, workers.WORKER_NAME_MAX_LENGTH)]
"""The name a worker pops with (its identity; created on its first pop)."""
NewWorkerName = Annotated[str, trimmed(workers.WORKER_RENAME_MIN_LENGTH, workers.WORKER_NAME_MAX_LENGTH)]
TeamName = Annotated[str, trimmed(teams.TEAM_NAME_MIN_LENGTH, teams.TEAM_NAME_MAX_LENGTH)]
SharedKeyName = Annotated[str, trimmed(sharedkeys.NAME_MIN_LENGTH, sharedkeys.NAME_MAX_LENGTH)]
