"""What domain functions need besides the database session: settings, secret, blob store, outbound HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from openhorde.config import Settings
from openhorde.domain.accounts import KeyCache
from openhorde.domain.catalogue import CatalogueNames
from openhorde.domain.moderation.cache import ModerationCache
from openhorde.domain.queue.availability import EligibilityMemo
from openhorde.domain.queue.idle import IdlePops
from openhorde.domain.stats import ImageTally
from openhorde.domain.turns import Turns
from openhorde.domain.usage import UsageTally
from openhorde.domain.worker_cache import WorkerCache
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
    keys: KeyCache = field(default_factory=KeyCache)
    """Accounts of recently used API keys (``domain/accounts.py``)."""
    workers: WorkerCache = field(default_factory=WorkerCache)
    """Checked-in workers between writes of their rows (``domain/workers.py``)."""
    catalogue: CatalogueNames = field(default_factory=CatalogueNames)
    """The catalogue's model names (``domain/catalogue.py``)."""
    eligibility: EligibilityMemo = field(default_factory=EligibilityMemo)
    """Workers that could serve each recent request (``domain/queue/availability.py``)."""
    idle: IdlePops = field(default_factory=IdlePops)
    """Empty pops answered from memory until a worker's models' queues change (``domain/queue/idle.py``)."""
    usage: UsageTally = field(default_factory=UsageTally)
    """Usage figures waiting to be written (``domain/usage.py``)."""
    image_stats: ImageTally = field(default_factory=ImageTally)
    """Images delivered per model, waiting to be added to ``/stats/img/*``'s counters (``domain/stats.py``)."""
    intake_turns: Turns = field(default_factory=Turns)
    """New requests of one requester, sent to the database one at a time (``domain/queue/requests.py``)."""
