"""Worker and team names unique regardless of case: unique indexes on lower(name)

"Alice-GPU" and "alice-gpu" can no longer both exist. Names that already clash are told apart first: in each
group of names equal regardless of case the oldest row keeps its name and each later one gets the suffix
"-" plus the start of its id (cut to fit the column), so the upgrade never fails on a live horde. The existing
case-sensitive unique constraints stay: dropping one would make SQLite rebuild the table (see 0007).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_LENGTH = 100
"""Both ``workers.name`` and ``teams.name`` are String(100)."""
TABLES = ("workers", "teams")


def _lower(connection: sa.Connection, name: str) -> str:
    """``name`` lowered by the database itself: the function the index uses (SQLite's folds only ASCII letters)."""
    return str(connection.execute(sa.select(sa.func.lower(name))).scalar_one())


def _suffixed(connection: sa.Connection, name: str, row_id: str, taken: set[str]) -> str:
    """``name`` with "-" and as much of ``row_id`` as makes it unique among ``taken`` (lowered names)."""
    for length in (8, 12, len(row_id)):
        suffix = f"-{row_id[:length]}"
        candidate = name[: NAME_LENGTH - len(suffix)] + suffix
        if _lower(connection, candidate) not in taken:
            return candidate
    raise RuntimeError(f"cannot find a free name for {name!r} (id {row_id})")


def _rename_case_duplicates(table: str) -> None:
    connection = op.get_bind()
    # Oldest first: the first row of each group (by the database's lower(), as the index) keeps its name.
    rows = connection.execute(sa.text(f"SELECT id, name, lower(name) FROM {table} ORDER BY created_at, id")).all()
    taken = {str(lowered) for _, _, lowered in rows}
    seen: set[str] = set()
    for row_id, name, lowered in rows:
        if lowered not in seen:
            seen.add(lowered)
            continue
        new_name = _suffixed(connection, str(name), str(row_id), taken)
        taken.add(_lower(connection, new_name))
        connection.execute(sa.text(f"UPDATE {table} SET name = :name WHERE id = :id"), {"name": new_name, "id": row_id})


def upgrade() -> None:
    for table in TABLES:
        _rename_case_duplicates(table)
        op.create_index(f"ix_{table}_name_lower", table, [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    # The renamed duplicates keep their new names: nothing says which case the old ones had been.
    for table in reversed(TABLES):
        op.drop_index(f"ix_{table}_name_lower", table_name=table)
