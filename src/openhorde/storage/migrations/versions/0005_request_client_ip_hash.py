"""requests.client_ip_hash and its index, for the free tier's per-IP queue limit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: SQLite's batch mode rebuilds the table and would lose the
    # DESC of the queue's partial index.
    op.add_column("requests", sa.Column("client_ip_hash", sa.String(64), nullable=True))
    op.create_index(
        "ix_requests_client_ip_queued",
        "requests",
        ["client_ip_hash"],
        unique=False,
        postgresql_where=sa.text("state = 'queued'"),
        sqlite_where=sa.text("state = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_requests_client_ip_queued",
        table_name="requests",
        postgresql_where=sa.text("state = 'queued'"),
        sqlite_where=sa.text("state = 'queued'"),
    )
    # SQLite (3.35+) drops a column in place; no table rebuild, so the queue index keeps its DESC.
    op.drop_column("requests", "client_ip_hash")
