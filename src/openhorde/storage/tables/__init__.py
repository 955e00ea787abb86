"""SQLAlchemy table classes. Importing this package registers every table on ``Base.metadata``."""

from openhorde.storage.tables.audit import AuditEntry
from openhorde.storage.tables.base import Base
from openhorde.storage.tables.catalogue import CatalogueModel
from openhorde.storage.tables.gallery import GalleryImage
from openhorde.storage.tables.ledger import KudosPosting, KudosTransaction
from openhorde.storage.tables.requests import Job, Request, RequestModel, RequestWorker
from openhorde.storage.tables.users import User
from openhorde.storage.tables.workers import Worker, WorkerModel

__all__ = [
    "AuditEntry",
    "Base",
    "CatalogueModel",
    "GalleryImage",
    "Job",
    "KudosPosting",
    "KudosTransaction",
    "Request",
    "RequestModel",
    "RequestWorker",
    "User",
    "Worker",
    "WorkerModel",
]
