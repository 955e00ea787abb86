"""prompt_moderation_events, prompt_moderation_notes and worker_suspicion_events

The evidence of ``/operations/moderation/*``: prompts the filters refused or rewrote (with moderators' notes)
and suspicious things workers did. No foreign keys to users, requests or workers: the evidence outlives them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_moderation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("ip_hash", sa.String(64), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("submitted_prompt", sa.Text(), nullable=False),
        sa.Column("effective_prompt", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_moderation_events")),
    )
    op.create_index("ix_prompt_moderation_events_user_id_id", "prompt_moderation_events", ["user_id", "id"])
    op.create_table(
        "prompt_moderation_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["prompt_moderation_events.id"],
            name=op.f("fk_prompt_moderation_notes_event_id_prompt_moderation_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_moderation_notes")),
    )
    op.create_index("ix_prompt_moderation_notes_event_id", "prompt_moderation_notes", ["event_id"])
    op.create_table(
        "worker_suspicion_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("worker_id", sa.String(36), nullable=False),
        sa.Column("worker_name", sa.String(100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("suspicion_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_suspicion_events")),
    )
    op.create_index("ix_worker_suspicion_events_worker_id_id", "worker_suspicion_events", ["worker_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_worker_suspicion_events_worker_id_id", table_name="worker_suspicion_events")
    op.drop_table("worker_suspicion_events")
    op.drop_index("ix_prompt_moderation_notes_event_id", table_name="prompt_moderation_notes")
    op.drop_table("prompt_moderation_notes")
    op.drop_index("ix_prompt_moderation_events_user_id_id", table_name="prompt_moderation_events")
    op.drop_table("prompt_moderation_events")
