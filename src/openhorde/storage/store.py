"""The unit of work the domain sees: one database transaction and the repositories that speak in it.

The domain never holds a SQLAlchemy session. A route (or a loop step) opens one ``Store`` with
``Database.store()``; domain functions take it and call its repositories, which hold every statement and
return frozen values. Repositories are made on first use, so a call that needs only one of them pays for
one. ``announce`` keeps a change event to be published once the unit of work commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from openhorde.storage import events
from openhorde.storage.direct_sql import DirectSql, Reads, end_transaction
from openhorde.storage.repositories.accounts import AccountRepository
from openhorde.storage.repositories.audit import AuditRepository
from openhorde.storage.repositories.availability import AvailabilityRepository
from openhorde.storage.repositories.billing import BillingRepository
from openhorde.storage.repositories.catalogue import CatalogueRepository
from openhorde.storage.repositories.deliveries import DeliveryRepository
from openhorde.storage.repositories.gallery import GalleryRepository
from openhorde.storage.repositories.handouts import HandoutRepository
from openhorde.storage.repositories.intake import IntakeRepository
from openhorde.storage.repositories.interrogations import InterrogationRepository
from openhorde.storage.repositories.ledger import LedgerRepository
from openhorde.storage.repositories.limits import LimitRepository
from openhorde.storage.repositories.moderation import ModerationRepository
from openhorde.storage.repositories.moderation_events import ModerationEventRepository
from openhorde.storage.repositories.news import NewsRepository
from openhorde.storage.repositories.queue import QueueRepository
from openhorde.storage.repositories.ratings import RatingRepository
from openhorde.storage.repositories.request_payloads import RequestPayloadRepository
from openhorde.storage.repositories.sharedkeys import SharedKeyRepository
from openhorde.storage.repositories.stats import StatsRepository
from openhorde.storage.repositories.statuses import StatusRepository
from openhorde.storage.repositories.styles import StyleRepository
from openhorde.storage.repositories.teams import TeamRepository
from openhorde.storage.repositories.webhooks import WebhookRepository
from openhorde.storage.repositories.workers import WorkerRepository


class Store:
    """One unit of work: a transaction, its repositories, and the events it will announce on commit.

    The session opens when a repository is first used: a call answered from memory (an idle pop, an unchanged
    check) opens none, and opening and committing an empty one cost more than the rest of such a call. On
    PostgreSQL, when the hot statements (``DirectSql``) come first, they run on a connection of the unit of work's
    own, in a transaction begun and committed on the driver, and a session made afterwards joins that connection:
    a SQLAlchemy session around them cost ~0.3 ms of CPU per unit of work, more than its statements.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        is_sqlite: bool,
        reads: Reads | None = None,
        alone: Reads | None = None,
        broker: events.EventBroker | None = None,
    ) -> None:
        self._sessions = sessions
        self._opened: AsyncSession | None = None
        self._connection: AsyncConnection | None = None
        """PostgreSQL: the connection the hot statements opened before any session, which a later session joins."""
        self.is_sqlite = is_sqlite
        self._reads = reads
        self._alone = alone
        self._committed: list[Callable[[], None]] = []
        self._announced: list[events.Change] = []
        self._broker = broker
        """Where this unit of work's announced events go once it commits (``None``: nowhere)."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        """Commit when the block ends, roll back if it raises."""
        await self.finish(commit=error_type is None)

    @property
    def _session(self) -> AsyncSession:
        if self._opened is None:
            # Joining the hot statements' connection: the session's statements run in their transaction.
            self._opened = self._sessions() if self._connection is None else self._sessions(bind=self._connection)
        return self._opened

    async def _driver_connection(self) -> Any:
        """PostgreSQL: the DBAPI connection (SQLAlchemy's asyncpg adapter) the hot statements run on: the session's
        when a session exists, else one of this unit of work's own, which a session made later joins."""
        if self._opened is not None:
            connection = await self._opened.connection()
        else:
            if self._connection is None:
                self._connection = await self._sessions.kw["bind"].connect()
            connection = self._connection
        return (await connection.get_raw_connection()).dbapi_connection

    async def finish(self, commit: bool) -> None:
        """End the unit of work: commit (or roll back) and close its session, if one began a transaction (a
        repository made for a reader whose statements all ran on ``reads`` makes a session that never connects),
        then the transaction of the hot statements' own connection, if the session did not end it, and hand that
        connection back."""
        session, self._opened = self._opened, None
        connection, self._connection = self._connection, None
        callbacks, self._committed = self._committed, []
        announced, self._announced = self._announced, []
        try:
            if session is not None and session.in_transaction():
                try:
                    if commit:
                        await session.commit()
                    else:
                        await session.rollback()
                finally:
                    await session.close()
            if connection is not None:
                await end_transaction((await connection.get_raw_connection()).dbapi_connection, commit)
        finally:
            if connection is not None:
                await connection.close()
        if commit:
            if announced and self._broker is not None:
                self._broker.publish_nowait(announced)
            for callback in callbacks:
                callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit of work has committed (never if it rolls back): for what a process
        remembers of rows this transaction wrote, which no other call may act on before they exist for all."""
        self._committed.append(callback)

    @cached_property
    def _direct(self) -> DirectSql:
        """The hot statements' executor, on this unit of work's session."""
        return DirectSql(
            lambda: self._session,
            self._sessions.kw["bind"],
            self.is_sqlite,
            self._reads,
            self._alone,
            self._began,
            self._driver_connection,
        )

    def _began(self) -> bool:
        """Whether this unit of work has begun a transaction (a statement it sends alone would not see its
        writes)."""
        return self._connection is not None or (self._opened is not None and self._opened.in_transaction())

    @cached_property
    def accounts(self) -> AccountRepository:
        """Users, API keys and balances."""
        return AccountRepository(self._session)

    @cached_property
    def audit(self) -> AuditRepository:
        """The log of privileged actions."""
        return AuditRepository(self._session)

    @cached_property
    def availability(self) -> AvailabilityRepository:
        """Whether live workers can serve requests, and how much they can do."""
        return AvailabilityRepository(lambda: self._session, self._direct, self.is_sqlite)

    @cached_property
    def billing(self) -> BillingRepository:
        """Supporters, Stripe events and credits bought."""
        return BillingRepository(self._session, self.is_sqlite)

    @cached_property
    def catalogue(self) -> CatalogueRepository:
        """The model catalogue."""
        return CatalogueRepository(self._session, self.is_sqlite)

    @cached_property
    def deliveries(self) -> DeliveryRepository:
        """Claiming and settling delivered jobs."""
        return DeliveryRepository(self._direct, self.is_sqlite)

    @cached_property
    def gallery(self) -> GalleryRepository:
        """Images registered users keep."""
        return GalleryRepository(self._session)

    @cached_property
    def handouts(self) -> HandoutRepository:
        """Finding a worker's next request and handing out its images."""
        return HandoutRepository(self._direct, self.is_sqlite)

    @cached_property
    def intake(self) -> IntakeRepository:
        """New requests: the requester's standing and the request's rows."""
        return IntakeRepository(self._direct, self.is_sqlite)

    @cached_property
    def interrogations(self) -> InterrogationRepository:
        """Alchemy: interrogation requests, their forms and their hand-out to alchemists."""
        return InterrogationRepository(self._session, self.is_sqlite)

    @cached_property
    def ledger(self) -> LedgerRepository:
        """Kudos transactions, their postings and the balances they move, escrow and history."""
        return LedgerRepository(self._session, self.is_sqlite)

    @cached_property
    def limits(self) -> LimitRepository:
        """What the limits counted by the database read (the free tier's per-IP queue)."""
        return LimitRepository(self._session)

    @cached_property
    def moderation(self) -> ModerationRepository:
        """The horde modes, the prompt filters and the messages to workers."""
        return ModerationRepository(self._session, self.is_sqlite)

    @cached_property
    def moderation_events(self) -> ModerationEventRepository:
        """The prompt events, their notes and the worker suspicion events moderators review."""
        return ModerationEventRepository(self._session)

    @cached_property
    def news(self) -> NewsRepository:
        """The pieces of news the admins publish."""
        return NewsRepository(self._session)

    @cached_property
    def queue(self) -> QueueRepository:
        """The queue outside pop and submit: cancels, faults, expired leases, time-outs and clean-up."""
        return QueueRepository(self._session, self.is_sqlite)

    @cached_property
    def ratings(self) -> RatingRepository:
        """Aesthetic ratings of delivered images."""
        return RatingRepository(self._session)

    @cached_property
    def request_payloads(self) -> RequestPayloadRepository:
        """What requests asked for, read back."""
        return RequestPayloadRepository(self._session)

    @cached_property
    def sharedkeys(self) -> SharedKeyRepository:
        """Shared keys, their owners and budgets."""
        return SharedKeyRepository(self._session)

    @cached_property
    def styles(self) -> StyleRepository:
        """Styles, their examples, and style collections."""
        return StyleRepository(self._session)

    @cached_property
    def statuses(self) -> StatusRepository:
        """A request's counters and jobs, for its status and its event stream."""
        return StatusRepository(self._direct)

    @cached_property
    def stats(self) -> StatsRepository:
        """Horde-wide figures for the status pages and the metrics."""
        return StatsRepository(self._session, self.is_sqlite)

    @cached_property
    def teams(self) -> TeamRepository:
        """Teams, their workers' sums and models, and which team a worker is in."""
        return TeamRepository(self._session, self.is_sqlite)

    @cached_property
    def webhooks(self) -> WebhookRepository:
        """The webhook outbox."""
        return WebhookRepository(self._session, self.is_sqlite)

    @cached_property
    def workers(self) -> WorkerRepository:
        """Workers, their models, check-ins, changes and abort counts."""
        return WorkerRepository(self._session)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: what the block writes is undone if it raises, and the unit of work goes on."""
        async with self._session.begin_nested():
            yield

    def announce(self, event: events.Change) -> None:
        """Publish ``event`` to every server process once this unit of work commits (never if it rolls back)."""
        self._announced.append(event)
