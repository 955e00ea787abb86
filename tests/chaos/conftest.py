"""The chaos suite reuses the end-to-end fixtures (a fresh PostgreSQL database per test)."""

from tests.e2e.conftest import fresh_postgres_database

__all__ = ["fresh_postgres_database"]
