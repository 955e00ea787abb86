"""Hypernetworks: requests.has_hypernetworks and workers.allow_hypernetworks

A request that names hypernetworks (``params.hypernetworks``, an OpenHorde extension) is handed only to workers
that declare ``allow_hypernetworks`` in their pop, as ``has_loras``/``allow_lora`` do for LoRAs.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain add_column (no batch mode) keeps SQLite from rebuilding the tables; no stored request has any.
    op.add_column("requests", sa.Column("has_hypernetworks", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("workers", sa.Column("allow_hypernetworks", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+): batch mode would rebuild the tables.
    op.drop_column("workers", "allow_hypernetworks")
    op.drop_column("requests", "has_hypernetworks")
