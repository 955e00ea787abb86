"""Seeds: the text a client sends becomes the integer a worker uses."""

from __future__ import annotations

import secrets

SEED_MODULUS = 2**32


def parse_seed(text: str | None) -> int | None:
    """The integer seed for a client's seed text, or ``None`` for a random one.

    ASCII digits are read as a number; any other text is read as the little-endian integer of its
    UTF-8 bytes. Both wrap below 2³², so "The little seed that could" always means the same seed.
    """
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    # Only ASCII digits: ``str.isdigit`` also accepts "²", which ``int()`` then rejects.
    if stripped.isascii() and stripped.isdigit():
        return int(stripped) % SEED_MODULUS
    return int.from_bytes(stripped.encode(), "little") % SEED_MODULUS


def job_seed(base: int | None, variation: int, index: int) -> int:
    """The seed of the ``index``-th image of a request: base + variation × index, or random."""
    if base is None:
        return secrets.randbelow(SEED_MODULUS)
    return (base + variation * index) % SEED_MODULUS
