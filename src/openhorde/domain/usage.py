"""Usage figures kept in memory and written in batches, so a hot call touches no row it would otherwise not.

A delivered image adds its megapixel-steps to the requester's usage. When the submit does not otherwise write
the requester's row (anonymous requests, censored images: nothing is charged), writing it just for the figure
would lock a row that many calls share (the anonymous account). Such figures are added up here instead and
written by each process's maintenance loop (and when the server stops): statistics, not money, so a crash may
lose a few seconds of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from openhorde.storage.store import Store


@dataclass
class UsageTally:
    """Megapixel-steps of delivered images per requester, not yet written."""

    _megapixelsteps: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, user_id: int, megapixelsteps: float) -> None:
        """Count a delivered image's megapixel-steps for a requester."""
        self._megapixelsteps[user_id] += megapixelsteps

    async def flush(self, store: Store) -> int:
        """Write what was counted (one statement per user); returns how many users were updated."""
        pending, self._megapixelsteps = self._megapixelsteps, defaultdict(float)
        for user_id, amount in sorted(pending.items()):
            await store.accounts.add_usage(user_id, amount)
        return len(pending)
