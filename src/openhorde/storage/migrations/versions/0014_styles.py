"""styles, their models, tags and examples, and style collections

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:15:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owned_columns(table: str) -> list[Any]:
    """The columns styles and collections share, with the owner's foreign key and the per-owner unique name."""
    return [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("style_type", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("info", sa.String(1000), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("user_id", "name", name=op.f(f"uq_{table}_user_id")),
    ]


def _listed_under(table: str, parent: str, parent_column: str, value: sa.Column[str]) -> None:
    """A table of ``(parent, position) → value`` rows, deleted with their parent, with ``value`` indexed."""
    op.create_table(
        table,
        sa.Column(parent_column, sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        value,
        sa.ForeignKeyConstraint(
            [parent_column], [f"{parent}.id"], name=op.f(f"fk_{table}_{parent_column}_{parent}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(parent_column, "position", name=op.f(f"pk_{table}")),
    )
    op.create_index(f"ix_{table}_{value.name}", table, [value.name])


def upgrade() -> None:
    op.create_table(
        "styles",
        *_owned_columns("styles"),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=False),
        sa.Column("sharedkey_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["sharedkey_id"], ["shared_keys.id"], name=op.f("fk_styles_sharedkey_id_shared_keys"), ondelete="SET NULL"
        ),
    )
    for column in ("name", "sharedkey_id", "use_count", "created_at"):
        op.create_index(f"ix_styles_{column}", "styles", [column])
    _listed_under("style_models", "styles", "style_id", sa.Column("model", sa.String(255), nullable=False))
    _listed_under("style_tags", "styles", "style_id", sa.Column("tag", sa.String(100), nullable=False))
    op.create_table(
        "style_examples",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("style_id", sa.String(36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["style_id"], ["styles.id"], name=op.f("fk_style_examples_style_id_styles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_style_examples")),
    )
    op.create_index("ix_style_examples_style_id", "style_examples", ["style_id"])
    op.create_table("style_collections", *_owned_columns("style_collections"))
    for column in ("name", "use_count", "created_at"):
        op.create_index(f"ix_style_collections_{column}", "style_collections", [column])
    op.create_table(
        "style_collection_members",
        sa.Column("collection_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("style_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["style_collections.id"],
            name=op.f("fk_style_collection_members_collection_id_style_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["style_id"], ["styles.id"], name=op.f("fk_style_collection_members_style_id_styles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("collection_id", "position", name=op.f("pk_style_collection_members")),
    )
    op.create_index("ix_style_collection_members_style_id", "style_collection_members", ["style_id"])


def downgrade() -> None:
    op.drop_table("style_collection_members")
    op.drop_table("style_collections")
    op.drop_table("style_examples")
    op.drop_table("style_tags")
    op.drop_table("style_models")
    op.drop_table("styles")
