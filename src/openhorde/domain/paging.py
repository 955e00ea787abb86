"""One page of a newest-first listing (gallery, kudos history, audit log) and where it sits among all pages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """``items`` of page ``page`` (from 1) out of ``pages``, ``total`` items in all."""

    items: list[T]
    page: int
    pages: int
    total: int

    @classmethod
    def of(cls, items: list[T], page: int, total: int, page_size: int) -> Page[T]:
        """The page, with ``pages`` at least 1 so an empty listing is one empty page."""
        return cls(items=items, page=page, pages=max(1, math.ceil(total / page_size)), total=total)


def offset_of(page: int, page_size: int) -> int:
    """The first row of ``page`` (from 1)."""
    return (page - 1) * page_size
