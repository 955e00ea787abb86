"""The gallery: requests.gallery and gallery_images, for images registered users keep on the server

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: SQLite's batch mode rebuilds the table and would lose the
    # DESC of the queue's partial index.
    op.add_column("requests", sa.Column("gallery", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "gallery_images",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("image_key", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("worker_id", sa.String(36), nullable=True),
        sa.Column("worker_name", sa.String(100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("source_processing", sa.String(16), nullable=False),
        sa.Column("censored", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_gallery_images_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_images")),
        sa.UniqueConstraint("job_id", name=op.f("uq_gallery_images_job_id")),
    )
    op.create_index("ix_gallery_images_user_created", "gallery_images", ["user_id", "created_at"])
    op.create_index("ix_gallery_images_image_key", "gallery_images", ["image_key"])


def downgrade() -> None:
    op.drop_table("gallery_images")
    op.drop_column("requests", "gallery")  # plain DROP COLUMN (SQLite 3.35+), like the ADD above
