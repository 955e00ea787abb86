"""worker economy: kudos_escrow per untrusted owner; workers' windowed abort counter for automatic maintenance

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kudos_escrow",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("held_cents", sa.BigInteger(), nullable=False),
        sa.Column("earned_cents", sa.BigInteger(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("releases", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_kudos_escrow_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_kudos_escrow")),
    )
    # Plain add_column (no batch mode) keeps SQLite from rebuilding the table.
    op.add_column("workers", sa.Column("aborts_in_window", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("workers", sa.Column("abort_window_started_at", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+): batch mode would rebuild ``workers`` and, with foreign keys on,
    # cascade into the tables that refer to it.
    op.drop_column("workers", "abort_window_started_at")
    op.drop_column("workers", "aborts_in_window")
    op.drop_table("kudos_escrow")
