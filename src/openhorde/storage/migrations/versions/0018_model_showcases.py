"""models.showcases

The catalogue keeps each model's showcase image URLs, as the AI Horde model reference lists them
(``openhorde admin import-models``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("showcases", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("showcases")
