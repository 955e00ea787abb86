"""workers.can_censor_nsfw: a worker without a safety model gets no request that asks for censoring

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("can_censor_nsfw", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): batch mode would rebuild ``workers`` and cascade into its children.
    op.drop_column("workers", "can_censor_nsfw")
