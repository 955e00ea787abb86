"""Post-processors by name: requests.post_processor_bits and workers.post_processors

A request's post-processors as bits, so a pop can skip requests that ask for one the worker's bridge cannot
run or the worker says it lacks; the list a worker declares in its pop (an OpenHorde extension).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POST_PROCESSORS = (
    "GFPGAN",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "CodeFormers",
    "strip_background",
)
"""The bit order of ``domain/post_processors.py`` when this revision was written (a migration stays as written)."""


def upgrade() -> None:
    # Plain add_column (no batch mode) keeps SQLite from rebuilding the tables.
    op.add_column("requests", sa.Column("post_processor_bits", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("workers", sa.Column("post_processors", sa.JSON(), nullable=False, server_default="[]"))
    # Requests already stored get their bits from their params (few: only those asking for post-processing).
    requests = sa.table(
        "requests",
        sa.column("id", sa.String()),
        sa.column("params", sa.JSON()),
        sa.column("has_post_processing", sa.Boolean()),
        sa.column("post_processor_bits", sa.Integer()),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(requests.c.id, requests.c.params).where(requests.c.has_post_processing))
    for request_id, params in rows.fetchall():
        names = set((params or {}).get("post_processing") or ())
        value = sum(1 << index for index, name in enumerate(POST_PROCESSORS) if name in names)
        connection.execute(requests.update().where(requests.c.id == request_id).values(post_processor_bits=value))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+): batch mode would rebuild the tables.
    op.drop_column("workers", "post_processors")
    op.drop_column("requests", "post_processor_bits")
