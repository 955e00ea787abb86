"""image_stats counters, news and image_ratings

``image_stats`` holds images and pixel-steps per model and time bucket, added to as images are delivered, so
``/stats/img/*`` read a few hundred rows instead of the history of jobs. ``news`` holds what the admins
publish on ``/status/news``; ``image_ratings`` the aesthetic ratings of ``/generate/rate/{id}``, kept after
their request is removed (hence no foreign keys).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_stats",
        sa.Column("span_seconds", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("pixelsteps", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("span_seconds", "bucket_start", "model", name=op.f("pk_image_stats")),
    )
    op.create_table(
        "news",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date_published", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("newspiece", sa.Text(), nullable=False),
        sa.Column("importance", sa.String(32), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("more_info_urls", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news")),
    )
    op.create_table(
        "image_ratings",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("artifacts", sa.Integer(), nullable=True),
        sa.Column("best", sa.Boolean(), nullable=False),
        sa.Column("rated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_image_ratings")),
    )
    op.create_index("ix_image_ratings_request_id", "image_ratings", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_image_ratings_request_id", table_name="image_ratings")
    op.drop_table("image_ratings")
    op.drop_table("news")
    op.drop_table("image_stats")
