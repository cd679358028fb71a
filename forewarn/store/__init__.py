"""Persistence of the node: SQLAlchemy 2 tables, Alembic migrations, SQLite (WAL) by default and
PostgreSQL by URL. ``open_store(settings)`` gives a migrated :class:`Store`; ``repository`` holds
the reads and writes of the core records."""

from forewarn.store.db import Store, StoreError, insert_ignoring_duplicates, migrate, open_store

__all__ = ["Store", "StoreError", "insert_ignoring_duplicates", "migrate", "open_store"]
