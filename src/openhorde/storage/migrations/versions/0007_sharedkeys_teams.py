"""shared_keys and teams: requests.sharedkey_id, workers.team_id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shared_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kudos_limit", sa.BigInteger(), nullable=False),
        sa.Column("utilized_cents", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("max_image_pixels", sa.Integer(), nullable=False),
        sa.Column("max_image_steps", sa.Integer(), nullable=False),
        sa.Column("max_text_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_shared_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_shared_keys_key_hash")),
    )
    op.create_index("ix_shared_keys_user_id", "shared_keys", ["user_id"])
    op.create_table(
        "teams",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_teams_owner_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    # Plain ADD COLUMNs, not batch mode: SQLite's batch mode rebuilds the table, which loses the DESC of the
    # queue's partial index on ``requests`` and, with foreign keys on, would cascade a rebuilt ``workers``'
    # drop into its models and messages. Neither column has a foreign key for the same reason (SQLite cannot
    # add one to an existing table); deleting a team clears its workers' team_id itself (domain/teams.py).
    op.add_column("requests", sa.Column("sharedkey_id", sa.String(36), nullable=True))
    op.add_column("workers", sa.Column("team_id", sa.String(36), nullable=True))
    op.create_index("ix_workers_team_id", "workers", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_workers_team_id", table_name="workers")
    # Plain DROP COLUMNs (SQLite 3.35+) for the same reasons as the ADDs above.
    op.drop_column("workers", "team_id")
    op.drop_column("requests", "sharedkey_id")
    op.drop_table("teams")
    op.drop_index("ix_shared_keys_user_id", table_name="shared_keys")
    op.drop_table("shared_keys")
