"""Bulk writes for federation's hot paths (syncing millions of indicators).

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert at this volume, so
these helpers hand pre-converted tuples straight to the driver's ``executemany``: one statement,
compiled once, values in the same storage format SQLAlchemy itself uses (UTC wall time as
``YYYY-MM-DD HH:MM:SS.ffffff`` and 0/1 booleans on SQLite; native values on PostgreSQL). The tests
read rows written here back through SQLAlchemy, on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, Connection, DateTime, Table


def _converter(conn: Connection, table: Table, columns: Sequence[str]) -> list[Any]:
    sqlite = conn.dialect.name == "sqlite"
    out: list[Any] = []
    for name in columns:
        col_type = table.c[name].type
        if sqlite and isinstance(col_type, DateTime):
            out.append(_sqlite_ts)
        elif sqlite and isinstance(col_type, Boolean):
            out.append(_sqlite_bool)
        else:
            out.append(None)
    return out


@lru_cache(maxsize=65_536)  # rows of one batch share most of their timestamps
def _sqlite_ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    v = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return v.isoformat(" ", "microseconds")


def _sqlite_bool(value: object) -> int | None:
    return None if value is None else int(bool(value))


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                conflict: Sequence[str] | None = None, update: dict[str, str] | None = None) -> None:
    """``executemany`` an INSERT of ``rows`` (all with the same keys).

    ``conflict``: columns of a unique constraint; with ``update`` (column -> SQL expression, where
    ``excluded.col`` is the new value) conflicting rows are updated, otherwise skipped.
    """
    if not rows:
        return
    columns = list(rows[0])
    convert = _converter(conn, table, columns)
    ph = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([ph] * len(columns))})")
    if conflict is not None:
        target = f"({', '.join(conflict)})"
        if update:
            sets = ", ".join(f"{col} = {expr}" for col, expr in update.items())
            sql += f" ON CONFLICT {target} DO UPDATE SET {sets}"
        else:
            sql += f" ON CONFLICT {target} DO NOTHING"
    params = [tuple(r[c] if f is None else f(r[c]) for c, f in zip(columns, convert, strict=True)) for r in rows]
    conn.exec_driver_sql(sql, params)  # type: ignore[arg-type]
