"""SQLAlchemy table classes. Importing this package registers every table on ``Base.metadata``."""

from openhorde.storage.tables.audit import AuditEntry
from openhorde.storage.tables.base import Base
from openhorde.storage.tables.billing import StripeEvent, Supporter
from openhorde.storage.tables.catalogue import CatalogueModel
from openhorde.storage.tables.escrow import KudosEscrow
from openhorde.storage.tables.gallery import GalleryImage
from openhorde.storage.tables.interrogations import Interrogation, InterrogationForm
from openhorde.storage.tables.ledger import KudosPosting, KudosTransaction
from openhorde.storage.tables.moderation import HordeModes, PromptFilter, WorkerMessage
from openhorde.storage.tables.moderation_events import (
    PromptModerationEvent,
    PromptModerationNote,
    WorkerSuspicionEvent,
)
from openhorde.storage.tables.news import NewsPiece
from openhorde.storage.tables.ratings import ImageRating
from openhorde.storage.tables.requests import Job, Request, RequestModel, RequestWorker
from openhorde.storage.tables.sharedkeys import SharedKey
from openhorde.storage.tables.stats import ImageStat
from openhorde.storage.tables.styles import (
    Style,
    StyleCollection,
    StyleCollectionMember,
    StyleExample,
    StyleModel,
    StyleTag,
)
from openhorde.storage.tables.teams import Team
from openhorde.storage.tables.users import User
from openhorde.storage.tables.webhooks import WebhookDelivery
from openhorde.storage.tables.workers import Worker, WorkerModel

__all__ = [
    "AuditEntry",
    "Base",
    "CatalogueModel",
    "GalleryImage",
    "HordeModes",
    "ImageRating",
    "ImageStat",
    "Interrogation",
    "InterrogationForm",
    "Job",
    "KudosEscrow",
    "KudosPosting",
    "KudosTransaction",
    "NewsPiece",
    "PromptFilter",
    "PromptModerationEvent",
    "PromptModerationNote",
    "Request",
    "RequestModel",
    "RequestWorker",
    "SharedKey",
    "StripeEvent",
    "Style",
    "StyleCollection",
    "StyleCollectionMember",
    "StyleExample",
    "StyleModel",
    "StyleTag",
    "Supporter",
    "Team",
    "User",
    "WebhookDelivery",
    "Worker",
    "WorkerMessage",
    "WorkerModel",
    "WorkerSuspicionEvent",
]
