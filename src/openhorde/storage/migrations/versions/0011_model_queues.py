"""Per-model queues: request_models carries its request's queue_rank and whether it has images waiting, and
only queued requests' rows

A pop walks, for each of the worker's models, that model's queued requests in rank order
(``ix_request_models_queue``), and requests that accept any model through their own partial index
(``ix_requests_queue_any_model``), instead of walking the whole queue and probing each request's
models: a pop whose models have nothing queued no longer reads the whole queue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED_ANY_MODEL = "state = 'queued' AND n_waiting > 0 AND has_model_list IS false"


def upgrade() -> None:
    # Ended requests no longer need their model rows: the pop reads them only while a request is queued.
    op.execute("DELETE FROM request_models WHERE request_id IN (SELECT id FROM requests WHERE state <> 'queued')")
    # Plain add_column (no batch mode) keeps SQLite from rebuilding the table.
    op.add_column("request_models", sa.Column("queue_rank", sa.Float(), nullable=False, server_default="0"))
    op.add_column("request_models", sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute(
        "UPDATE request_models SET "
        "queue_rank = (SELECT requests.queue_rank FROM requests WHERE requests.id = request_models.request_id), "
        "waiting = (SELECT requests.n_waiting > 0 FROM requests WHERE requests.id = request_models.request_id)"
    )
    op.create_index(
        "ix_request_models_queue",
        "request_models",
        ["model", sa.text("queue_rank DESC"), "request_id"],
        postgresql_where=sa.text("waiting"),
        sqlite_where=sa.text("waiting"),
    )
    op.create_index(
        "ix_requests_queue_any_model",
        "requests",
        [sa.text("queue_rank DESC"), "id"],
        postgresql_where=sa.text(QUEUED_ANY_MODEL),
        sqlite_where=sa.text(QUEUED_ANY_MODEL),
    )


def downgrade() -> None:
    op.drop_index("ix_requests_queue_any_model", table_name="requests")
    op.drop_index("ix_request_models_queue", table_name="request_models")
    # Plain DROP COLUMNs (SQLite 3.35+), as in 0009.
    op.drop_column("request_models", "waiting")
    op.drop_column("request_models", "queue_rank")
