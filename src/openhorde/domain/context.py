"""What domain functions need besides the database session: settings, secret and blob store."""

from __future__ import annotations

from dataclasses import dataclass, field

from openhorde.config import Settings
from openhorde.domain.moderation.cache import ModerationCache
from openhorde.storage.blobs import BlobBackend


@dataclass(frozen=True)
class HordeContext:
    """Process-wide collaborators, built once at start-up and passed down."""

    settings: Settings
    secret: str
    blobs: BlobBackend
    moderation: ModerationCache = field(default_factory=ModerationCache)
