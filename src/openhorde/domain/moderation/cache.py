"""Per-process caches of moderation state that hot paths read: the horde modes and the compiled filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from openhorde.storage.repositories.moderation import Modes as Modes  # the domain's name for it too


@dataclass(frozen=True)
class CompiledFilters:
    """The filter list compiled once per version: one alternation per group and the replacements in order."""

    version: int
    group1: re.Pattern[str] | None = None
    group2: re.Pattern[str] | None = None
    replacements: list[tuple[re.Pattern[str], str]] = field(default_factory=list)


@dataclass
class ModerationCache:
    """Held by the ``HordeContext``: one per process (per app), so two hordes in one process never mix."""

    modes: Modes | None = None
    modes_read_at: float = 0.0
    filters: CompiledFilters | None = None

    def forget_modes(self) -> None:
        """Read the modes again on the next use (this process just changed them)."""
        self.modes = None
