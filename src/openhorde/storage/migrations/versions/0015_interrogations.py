"""Alchemy: interrogations and their forms; workers get a type (image or interrogation), forms and max_tiles

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "state = 'waiting'"
PROCESSING = "state = 'processing'"
OPEN = "state IN ('waiting', 'processing')"


def upgrade() -> None:
    op.create_table(
        "interrogations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("image_tiles", sa.Integer(), nullable=False),
        sa.Column("slow_workers", sa.Boolean(), nullable=False),
        sa.Column("trusted_workers", sa.Boolean(), nullable=False),
        sa.Column("webhook", sa.String(length=1024), nullable=True),
        sa.Column("client_agent", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_interrogations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interrogations")),
    )
    op.create_index("ix_interrogations_expires_at", "interrogations", ["expires_at"])
    op.create_index(op.f("ix_interrogations_user_id"), "interrogations", ["user_id"])
    op.create_table(
        "interrogation_forms",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("interrogation_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("reward_cents", sa.BigInteger(), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("image_tiles", sa.Integer(), nullable=False),
        sa.Column("slow_workers", sa.Boolean(), nullable=False),
        sa.Column("trusted_workers", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("deadline_at", sa.Float(), nullable=True),
        sa.Column("aborts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interrogation_id"],
            ["interrogations.id"],
            name=op.f("fk_interrogation_forms_interrogation_id_interrogations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interrogation_forms")),
    )
    op.create_index(op.f("ix_interrogation_forms_interrogation_id"), "interrogation_forms", ["interrogation_id"])
    op.create_index(
        "ix_interrogation_forms_queue",
        "interrogation_forms",
        [sa.text("priority DESC"), "created_at", "id"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    op.create_index(
        "ix_interrogation_forms_deadline",
        "interrogation_forms",
        ["deadline_at"],
        postgresql_where=sa.text(PROCESSING),
        sqlite_where=sa.text(PROCESSING),
    )
    op.create_index(
        "ix_interrogation_forms_user_open",
        "interrogation_forms",
        ["user_id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    # Plain add_column (no batch mode) keeps SQLite from rebuilding the table.
    op.add_column("workers", sa.Column("worker_type", sa.String(length=16), nullable=False, server_default="image"))
    op.add_column("workers", sa.Column("forms", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("workers", sa.Column("max_tiles", sa.Integer(), nullable=False, server_default="16"))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+): batch mode would rebuild ``workers``.
    op.drop_column("workers", "max_tiles")
    op.drop_column("workers", "forms")
    op.drop_column("workers", "worker_type")
    op.drop_table("interrogation_forms")
    op.drop_table("interrogations")
