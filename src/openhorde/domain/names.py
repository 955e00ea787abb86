"""Names people choose (workers, teams, shared keys): trimmed first, then checked, so padding never counts.

"  ab  " is the 2-character name "ab", and "x" padded with spaces cannot pass a minimum length. Usernames
follow the same rule with their own pattern (``accounts.validate_username``).
"""

from __future__ import annotations

from openhorde.errors import BadRequest


def clean_name(raw: str, *, what: str, minimum: int, maximum: int, error: type[BadRequest]) -> str:
    """``raw`` without surrounding whitespace; ``error`` if that is shorter or longer than allowed."""
    name = raw.strip()
    if not minimum <= len(name) <= maximum:
        raise error(f"A {what} has {minimum} to {maximum} characters, not counting surrounding spaces.")
    return name
