"""Append-only, hash-chained audit log of every write.

Each entry's hash covers its content and the previous entry's hash, so changing, removing or
reordering any entry breaks the chain from that point on; :func:`verify_chain` finds the first
broken link. Entries are only ever inserted (sequence numbers are dense and start at 1).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from forewarn.model.indicators import utcnow
from forewarn.store import schema as t
from forewarn.store.db import utc

GENESIS = "0" * 64


def _entry_hash(seq: int, at: datetime, actor: str, action: str, target: str | None,
                detail: dict[str, Any], prev_hash: str) -> str:
    stamp = utc(at)
    body = json.dumps([seq, stamp.isoformat() if stamp else None, actor, action, target, detail, prev_hash],
                      sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def append(conn: Connection, actor: str, action: str, target: str | None = None,
           detail: dict[str, Any] | None = None) -> str:
    """Append one entry inside the caller's transaction; returns its hash.

    On SQLite the writer lock serialises appends; on PostgreSQL a transaction-level advisory lock
    does, so two concurrent writers can never fork the chain.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7461776172)")  # 'Fwar'
    last = conn.execute(select(t.audit_log.c.seq, t.audit_log.c.hash)
                        .order_by(t.audit_log.c.seq.desc()).limit(1)).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = utcnow().replace(microsecond=0)
    clean = json.loads(json.dumps(detail or {}, default=str))
    digest = _entry_hash(seq, at, actor, action, target, clean, prev)
    conn.execute(t.audit_log.insert().values(seq=seq, at=at, actor=actor, action=action, target=target,
                                             detail=clean, prev_hash=prev, hash=digest))
    return digest


@dataclass(frozen=True)
class ChainReport:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(conn: Connection) -> ChainReport:
    """Walk the whole chain; report the first entry that does not match."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in conn.execute(select(t.audit_log).order_by(t.audit_log.c.seq)).mappings():
        count += 1
        if row["seq"] != expected_seq:
            return ChainReport(count, False, expected_seq, f"entry {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(count, False, row["seq"], "previous-hash link broken")
        digest = _entry_hash(row["seq"], row["at"], row["actor"], row["action"], row["target"], row["detail"], prev)
        if digest != row["hash"]:
            return ChainReport(count, False, row["seq"], "entry content does not match its hash")
        prev = row["hash"]
        expected_seq += 1
    return ChainReport(count, True)


def count_entries(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one())
