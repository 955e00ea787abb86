"""Text every database can store: no NUL characters and no lone UTF-16 surrogates.

PostgreSQL refuses a NUL in any text or JSON value, and a lone surrogate (``"\\ud800"`` in JSON decodes to
one) has no UTF-8 form, so asyncpg cannot send it; SQLite would store the NUL and fail on the surrogate. Such
text is refused where it enters (wire bodies, paths, query strings, headers, Stripe events) with a 400, so it
never reaches a query and never becomes a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from openhorde.errors import InvalidCharacters

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_KEY_SHOWN = 40
"""Characters of a key shown in a refusal's location: keys are the sender's, of any length."""


def is_storable(text: str) -> bool:
    """Whether ``text`` holds no NUL character and no lone surrogate."""
    if text.isascii():  # the common case, and the fast one for a large base64 image
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def unstorable_at(value: Any, where: str = "body") -> str | None:
    """The location of the first unstorable text in a decoded JSON value (keys included), or None."""
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:  # a loop, not recursion: nesting depth is the sender's choice
        item, location = pending.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return location
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str) and not is_storable(key):
                    return f"{location} (a key)"
                pending.append((child, f"{location}.{str(key)[:_KEY_SHOWN]}"))
        elif isinstance(item, list | tuple):
            pending.extend((child, f"{location}[{index}]") for index, child in enumerate(item))
    return None


def check_storable(value: Any, where: str = "body") -> None:
    """Refuse (``InvalidCharacters``, 400) a decoded JSON value holding a NUL or a lone surrogate anywhere."""
    location = unstorable_at(value, where)
    if location is not None:
        raise InvalidCharacters(
            f"Text may not contain NUL characters or unpaired UTF-16 surrogates (found in {location})."
        )
