"""Bulk writes and object building for federation's hot paths (syncing millions of indicators).

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert at this volume, so
these helpers hand tuples straight to the driver's ``executemany``: one statement, compiled once,
values in the same storage format SQLAlchemy itself uses (UTC wall time as
``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite, whose driver binds Python booleans as 0/1; native values
on PostgreSQL). The tests
read rows written here back through SQLAlchemy, on both backends.

:func:`gc_paused` holds off Python's cycle collector while a page of STIX objects is built, parsed
or read: those are hundreds of thousands of small acyclic dicts that reference counting frees on its
own, and every full collection triggered by them would walk the whole heap again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table


@lru_cache(maxsize=65_536)  # rows of one batch share most of their timestamps
def _sqlite_ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    v = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return v.isoformat(" ", "microseconds")


def timestamp_param(conn: Connection) -> Callable[[datetime | None], Any] | None:
    """How a timestamp goes to this connection's driver in :func:`insert_tuples`: SQLite needs the
    text form; ``None`` when the driver takes datetimes as they are (PostgreSQL)."""
    return _sqlite_ts if conn.dialect.name == "sqlite" else None


def _insert_sql(conn: Connection, table: Table, columns: Sequence[str], conflict: Sequence[str] | None,
                update: dict[str, str] | None) -> str:
    ph = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([ph] * len(columns))})"
    if conflict is not None:
        target = f"({', '.join(conflict)})"
        if update:
            sets = ", ".join(f"{col} = {expr}" for col, expr in update.items())
            sql += f" ON CONFLICT {target} DO UPDATE SET {sets}"
        else:
            sql += f" ON CONFLICT {target} DO NOTHING"
    return sql


def insert_tuples(conn: Connection, table: Table, columns: Sequence[str], params: Sequence[tuple[Any, ...]], *,
                  conflict: Sequence[str] | None = None, update: dict[str, str] | None = None) -> None:
    """``executemany`` an INSERT of ``params``, tuples in ``columns`` order already in driver form
    (timestamps through :func:`timestamp_param`; Python booleans bind as 0/1 on SQLite).

    ``conflict``: columns of a unique constraint; with ``update`` (column -> SQL expression, where
    ``excluded.col`` is the new value) conflicting rows are updated, otherwise skipped.
    """
    if params:
        conn.exec_driver_sql(_insert_sql(conn, table, columns, conflict, update), params)  # type: ignore[arg-type]


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector for the duration (thread-safe and nestable: it resumes, if it was
    running before, when the last pause ends)."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()
