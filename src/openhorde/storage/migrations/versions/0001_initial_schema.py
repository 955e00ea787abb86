"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:10:36.789426
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kudos_transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kudos_transactions")),
        sa.UniqueConstraint("kind", "reference", name="uq_kudos_transactions_kind_reference"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("baseline", sa.String(length=64), nullable=False),
        sa.Column("inpainting", sa.Boolean(), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_models")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        sa.Column("kudos_cents", sa.BigInteger(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("worker_invited", sa.Integer(), nullable=False),
        sa.Column("public_workers", sa.Boolean(), nullable=False),
        sa.Column("contact", sa.String(length=500), nullable=True),
        sa.Column("admin_comment", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("is_moderator", sa.Boolean(), nullable=False),
        sa.Column("is_trusted", sa.Boolean(), nullable=False),
        sa.Column("is_flagged", sa.Boolean(), nullable=False),
        sa.Column("is_customizer", sa.Boolean(), nullable=False),
        sa.Column("is_vpn", sa.Boolean(), nullable=False),
        sa.Column("is_service", sa.Boolean(), nullable=False),
        sa.Column("is_education", sa.Boolean(), nullable=False),
        sa.Column("is_special", sa.Boolean(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("usage_megapixelsteps", sa.Float(), nullable=False),
        sa.Column("usage_requests", sa.Integer(), nullable=False),
        sa.Column("contribution_megapixelsteps", sa.Float(), nullable=False),
        sa.Column("contribution_fulfillments", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_users_api_key_hash")),
    )
    op.create_table(
        "kudos_postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("system_account", sa.String(length=16), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("(user_id IS NULL) <> (system_account IS NULL)", name=op.f("ck_kudos_postings_one_account")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["kudos_transactions.id"],
            name=op.f("fk_kudos_postings_transaction_id_kudos_transactions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_kudos_postings_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kudos_postings")),
    )
    with op.batch_alter_table("kudos_postings", schema=None) as batch_op:
        batch_op.create_index("ix_kudos_postings_transaction_id", ["transaction_id"], unique=False)
        batch_op.create_index("ix_kudos_postings_user_id", ["user_id"], unique=False)

    op.create_table(
        "requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_activity_at", sa.Float(), nullable=False),
        sa.Column("queue_rank", sa.Float(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("n_total", sa.Integer(), nullable=False),
        sa.Column("n_waiting", sa.Integer(), nullable=False),
        sa.Column("n_processing", sa.Integer(), nullable=False),
        sa.Column("n_finished", sa.Integer(), nullable=False),
        sa.Column("n_faulted", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("pixels", sa.BigInteger(), nullable=False),
        sa.Column("accurate_steps", sa.Integer(), nullable=False),
        sa.Column("things", sa.BigInteger(), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=False),
        sa.Column("censor_nsfw", sa.Boolean(), nullable=False),
        sa.Column("trusted_workers", sa.Boolean(), nullable=False),
        sa.Column("slow_workers", sa.Boolean(), nullable=False),
        sa.Column("worker_blacklist", sa.Boolean(), nullable=False),
        sa.Column("has_worker_list", sa.Boolean(), nullable=False),
        sa.Column("has_model_list", sa.Boolean(), nullable=False),
        sa.Column("r2", sa.Boolean(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("source_processing", sa.String(length=16), nullable=False),
        sa.Column("source_image_key", sa.String(length=200), nullable=True),
        sa.Column("source_mask_key", sa.String(length=200), nullable=True),
        sa.Column("has_loras", sa.Boolean(), nullable=False),
        sa.Column("has_post_processing", sa.Boolean(), nullable=False),
        sa.Column("has_controlnet", sa.Boolean(), nullable=False),
        sa.Column("kudos_backed", sa.Boolean(), nullable=False),
        sa.Column("disable_batching", sa.Boolean(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("charged_cents", sa.BigInteger(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("seed_variation", sa.Integer(), nullable=False),
        sa.Column("webhook", sa.String(length=1024), nullable=True),
        sa.Column("client_agent", sa.String(length=1000), nullable=False),
        sa.Column("fault_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_requests_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_last_activity_at", ["last_activity_at"], unique=False)
        batch_op.create_index(
            "ix_requests_queue",
            [sa.text("queue_rank DESC"), "id"],
            unique=False,
            postgresql_where=sa.text("state = 'queued' AND n_waiting > 0"),
            sqlite_where=sa.text("state = 'queued' AND n_waiting > 0"),
        )
        batch_op.create_index(
            "ix_requests_user_queued",
            ["user_id"],
            unique=False,
            postgresql_where=sa.text("state = 'queued'"),
            sqlite_where=sa.text("state = 'queued'"),
        )

    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("info", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_check_in_at", sa.Float(), nullable=False),
        sa.Column("ipaddr", sa.String(length=64), nullable=True),
        sa.Column("bridge_agent", sa.String(length=1000), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=False),
        sa.Column("max_pixels", sa.BigInteger(), nullable=False),
        sa.Column("allow_img2img", sa.Boolean(), nullable=False),
        sa.Column("allow_painting", sa.Boolean(), nullable=False),
        sa.Column("allow_post_processing", sa.Boolean(), nullable=False),
        sa.Column("allow_controlnet", sa.Boolean(), nullable=False),
        sa.Column("allow_sdxl_controlnet", sa.Boolean(), nullable=False),
        sa.Column("allow_lora", sa.Boolean(), nullable=False),
        sa.Column("allow_unsafe_ipaddr", sa.Boolean(), nullable=False),
        sa.Column("limit_max_steps", sa.Boolean(), nullable=False),
        sa.Column("extra_slow_worker", sa.Boolean(), nullable=False),
        sa.Column("require_upfront_kudos", sa.Boolean(), nullable=False),
        sa.Column("blacklist", sa.JSON(), nullable=False),
        sa.Column("priority_user_ids", sa.JSON(), nullable=False),
        sa.Column("capabilities_hash", sa.String(length=64), nullable=False),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        sa.Column("maintenance_msg", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("kudos_generated_cents", sa.BigInteger(), nullable=False),
        sa.Column("kudos_uptime_cents", sa.BigInteger(), nullable=False),
        sa.Column("fulfilments", sa.Integer(), nullable=False),
        sa.Column("megapixelsteps", sa.Float(), nullable=False),
        sa.Column("aborted_jobs", sa.Integer(), nullable=False),
        sa.Column("uncompleted_jobs", sa.Integer(), nullable=False),
        sa.Column("uptime_seconds", sa.Float(), nullable=False),
        sa.Column("speed_pps", sa.Float(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_workers_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("name", name=op.f("uq_workers_name")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_user_id"), ["user_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=True),
        sa.Column("worker_name", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("censored", sa.Boolean(), nullable=False),
        sa.Column("gen_metadata", sa.JSON(), nullable=False),
        sa.Column("image_key", sa.String(length=200), nullable=True),
        sa.Column("reward_cents", sa.BigInteger(), nullable=False),
        sa.Column("fault_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_jobs_request_id_requests"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_jobs_worker_id_workers"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_finished_at", ["finished_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_processing_deadline",
            ["deadline_at"],
            unique=False,
            postgresql_where=sa.text("state = 'processing'"),
            sqlite_where=sa.text("state = 'processing'"),
        )
        batch_op.create_index("ix_jobs_request_id", ["request_id"], unique=False)

    op.create_table(
        "request_models",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_models_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "model", name=op.f("pk_request_models")),
    )
    op.create_table(
        "request_workers",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_workers_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "worker_id", name=op.f("pk_request_workers")),
    )
    op.create_table(
        "worker_models",
        sa.Column("worker_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_worker_models_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("worker_id", "model", name=op.f("pk_worker_models")),
    )
    with op.batch_alter_table("worker_models", schema=None) as batch_op:
        batch_op.create_index("ix_worker_models_model", ["model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker_models", schema=None) as batch_op:
        batch_op.drop_index("ix_worker_models_model")

    op.drop_table("worker_models")
    op.drop_table("request_workers")
    op.drop_table("request_models")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_request_id")
        batch_op.drop_index(
            "ix_jobs_processing_deadline",
            postgresql_where=sa.text("state = 'processing'"),
            sqlite_where=sa.text("state = 'processing'"),
        )
        batch_op.drop_index("ix_jobs_finished_at")

    op.drop_table("jobs")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_user_id"))

    op.drop_table("workers")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_queue")
        batch_op.drop_index(
            "ix_requests_user_queued",
            postgresql_where=sa.text("state = 'queued'"),
            sqlite_where=sa.text("state = 'queued'"),
        )
        batch_op.drop_index("ix_requests_last_activity_at")

    op.drop_table("requests")
    with op.batch_alter_table("kudos_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_kudos_postings_user_id")
        batch_op.drop_index("ix_kudos_postings_transaction_id")

    op.drop_table("kudos_postings")
    op.drop_table("users")
    op.drop_table("models")
    op.drop_table("kudos_transactions")
