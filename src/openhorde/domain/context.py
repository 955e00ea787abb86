"""What domain functions need besides the database session: settings, secret, blob store, outbound HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from openhorde.config import Settings
from openhorde.domain.moderation.cache import ModerationCache
from openhorde.storage.blobs import BlobBackend


@dataclass(frozen=True)
class HordeContext:
    """Process-wide collaborators, built once at start-up and passed down."""

    settings: Settings
    secret: str
    blobs: BlobBackend
    outbound: httpx.AsyncClient
    """Fetches URLs that clients give (source images): public addresses only, see ``net/fetch.py``."""
    moderation: ModerationCache = field(default_factory=ModerationCache)
