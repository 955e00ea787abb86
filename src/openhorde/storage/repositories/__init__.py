"""Repositories: one module per aggregate, holding every statement about it and returning frozen values.

How a repository is written (``accounts.py``, ``deliveries.py``, ``handouts.py`` and ``intake.py`` show it):

* A class ``<Aggregate>Repository(session, is_sqlite)`` with ``__slots__``; the ``Store`` (``storage/store.py``)
  makes it on first use, so the domain reaches it as ``store.<aggregate>``.
* Methods take plain values and return frozen dataclasses (``slots=True``) defined next to the repository, or
  plain values: never ORM rows, so nothing the domain holds can write to the database behind its back.
* Statements are SQLAlchemy Core on the tables (``cast(Table, Model.__table__)``), built once at import (or once
  per shape with ``lru_cache``) with bound parameters: building an expression costs more than running it.
  A bound parameter of an ``INSERT`` or ``UPDATE`` never takes a column's name (a key named like a column
  becomes part of the statement's ``SET``).
* A hot call is one or two statements: PostgreSQL's data-modifying CTEs and ``RETURNING`` do several things at
  once; SQLite, whose one writer runs alone, may take a few more.
* A state change of a request or a job takes a ``lifecycle.Transition`` built from the domain's transition
  tables, so the conditional update only leaves the states the table allows.
"""
