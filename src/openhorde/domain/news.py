"""News: what ``/status/news`` shows, published and withdrawn by admins (audited)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from openhorde.domain import audit
from openhorde.errors import NewsNotFound, NotAdmin
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.news import NewsPiece as NewsPiece  # the domain's name for it too
from openhorde.storage.store import Store

DEFAULT_IMPORTANCE = "Information"
"""The AI Horde's importance for ordinary news (it also uses e.g. "Workers", "Crisis")."""


@dataclass(frozen=True)
class NewDraft:
    """A piece of news to publish; ``date_published`` (``YYYY-MM-DD``) defaults to today (UTC)."""

    title: str
    newspiece: str
    importance: str = DEFAULT_IMPORTANCE
    tags: list[str] = field(default_factory=list)
    more_info_urls: list[str] = field(default_factory=list)
    date_published: str | None = None


async def newest_first(store: Store) -> list[NewsPiece]:
    """Every piece of news, the most recently dated first."""
    return await store.news.newest_first()


def _require_admin(user: Account) -> None:
    if not user.is_admin:
        raise NotAdmin("Only admins can publish or withdraw news.")


async def publish(store: Store, user: Account, draft: NewDraft, now: float | None = None) -> NewsPiece:
    """Publish a piece of news (admins only)."""
    _require_admin(user)
    moment = now or time.time()
    values = asdict(draft)
    values["date_published"] = draft.date_published or datetime.fromtimestamp(moment, UTC).date().isoformat()
    piece = await store.news.add({**values, "created_at": moment})
    await audit.record(store, user, "news.publish", "news", piece.id, {"title": piece.title}, moment)
    return piece


async def withdraw(store: Store, user: Account, piece_id: int, now: float | None = None) -> NewsPiece:
    """Remove a piece of news (admins only)."""
    _require_admin(user)
    piece = await store.news.remove(piece_id)
    if piece is None:
        raise NewsNotFound()
    await audit.record(store, user, "news.withdraw", "news", piece_id, {"title": piece.title}, now)
    return piece
