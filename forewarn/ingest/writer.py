"""Writing one chunk of validated events into the ``events`` table, idempotently by event id.

Why not ``repository.insert_events``: bulk files bring millions of call records, and going through
SQLAlchemy's per-row parameter processing costs more than SQLite's own insert. Here a chunk is
written with one ``executemany`` of pre-serialised rows on the raw driver connection (SQLite), or
SQLAlchemy Core (PostgreSQL). The rows are byte-for-byte what ``repository.insert_events`` writes
(same datetime text, same JSON text), so both writers and every reader agree.

Which events are *new* is decided under a write lock (``BEGIN IMMEDIATE`` on SQLite, a transaction
advisory lock on PostgreSQL): ids already stored are looked up, the rest inserted. So the counts
(loaded vs duplicate) are exact and the in-process bus sees each event once, even when two
ingestions run at the same time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from itertools import repeat

from sqlalchemy import Connection, select

from forewarn.ingest.validate import EventBatch
from forewarn.model.indicators import utcnow
from forewarn.store import schema as t
from forewarn.store.db import insert_ignoring_duplicates

_PG_INGEST_LOCK = 7461776173
_INSERT_SQLITE = ("INSERT OR IGNORE INTO events (event_id, kind, occurred_at, subject, counterpart, payload, "
                  "source, batch_id, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def lock_for_write(conn: Connection) -> None:
    """Take the writer lock at the start of a chunk's transaction."""
    if conn.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        if driver is not None and not driver.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_INGEST_LOCK})")


def sqlite_datetime(iso: str) -> str:
    """``2026-01-01T10:00:00.5Z`` -> ``2026-01-01 10:00:00.500000`` (SQLAlchemy's SQLite DATETIME text)."""
    base = iso[:10] + " " + iso[11:19]
    frac = iso[19:].rstrip("Z")
    if frac.startswith("."):
        return base + frac.ljust(7, "0")[:7]
    return base + ".000000"


def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    if conn.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        rows = driver.execute(  # type: ignore[union-attr]
            "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),)).fetchall()
        return {r[0] for r in rows}
    found: set[str] = set()
    for start in range(0, len(ids), 10_000):
        part = list(ids[start:start + 10_000])
        found.update(conn.execute(select(t.events.c.event_id).where(t.events.c.event_id.in_(part))).scalars())
    return found


def write_events(conn: Connection, batch: EventBatch, batch_id: str | None,
                 ingested_at: datetime | None = None) -> tuple[EventBatch, int]:
    """Store the events not stored yet (the first of repeated ids in the batch wins);
    returns ``(new events, duplicates)``. Call inside the chunk's transaction after
    :func:`lock_for_write`."""
    first: dict[str, int] = {}
    for index, event_id in enumerate(batch.event_ids):
        first.setdefault(event_id, index)
    seen = existing_ids(conn, list(first))
    new = batch.take([index for event_id, index in first.items() if event_id not in seen])
    now = ingested_at or utcnow()
    if conn.dialect.name == "sqlite":
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        occurred = [db or sqlite_datetime(iso) for db, iso in zip(new.occurred_db, new.occurred_at, strict=True)]
        driver = conn.connection.driver_connection
        driver.executemany(_INSERT_SQLITE, zip(  # type: ignore[union-attr]
            new.event_ids, new.kinds, occurred, new.subjects, new.counterparts, new.payloads, new.sources,
            repeat(batch_id), repeat(stamp)))
    else:
        rows = [{"event_id": e.event_id, "kind": e.kind, "occurred_at": datetime.fromisoformat(e.occurred_at),
                 "subject": e.subject, "counterpart": e.counterpart, "payload": e.data, "source": e.source,
                 "batch_id": batch_id, "ingested_at": now} for e in new.events()]
        insert_ignoring_duplicates(conn, t.events, rows, ["event_id"])
    return new, len(batch) - len(new)
