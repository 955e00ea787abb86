"""A change of a row's state, as the statements that make it need it: the new state and the states it may leave.

The domain's transition tables (``domain/queue/states.py``) say which changes are allowed; they build these
values, and every statement that changes a request's or a job's state takes one, so the table is the one
place the rules live: a conditional update changes a row only from a state the table allows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Transition:
    """Become ``to`` from any of ``sources``."""

    to: str
    sources: tuple[str, ...]

    def sql_condition(self, column: str) -> str:
        """``column IN ('a', 'b')`` for a statement written as text (the states are ours, never a caller's)."""
        return f"{column} IN ({', '.join(repr(source) for source in self.sources)})"
