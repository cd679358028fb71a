"""The firewall's decision log: every ``mark`` and ``block`` (time, call or SMS, caller/sender,
callee/recipient, region, reasons, score, label language) and per-minute counts of every action.

Deciding never waits on the store: :meth:`DecisionLog.record` appends to a bounded in-memory buffer
(the oldest entry is dropped and counted when it is full) and bumps a per-minute counter; a
background flusher (or an explicit :meth:`DecisionLog.flush`, e.g. in tests and on shutdown) writes
the buffer in batches to ``firewall_decisions`` and adds the counts to ``firewall_decision_counts``.
Allows are only counted, never logged one by one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite

from forewarn.firewall.tables import firewall_decision_counts, firewall_decisions
from forewarn.store import Store
from forewarn.store.db import utc

log = logging.getLogger("forewarn.firewall.decisions")

KINDS = ("call", "sms")
ACTIONS = ("allow", "mark", "block")
LOGGED_ACTIONS = ("mark", "block")


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One mark or block, as kept in the buffer until the next flush."""

    at: float  # epoch seconds
    kind: str
    action: str
    source: str
    target: str
    region: str
    reasons: tuple[str, ...]
    score: float
    language: str | None


class DecisionLog:
    """Bounded buffer of decisions plus per-minute counts, flushed to the store in batches."""

    def __init__(self, store: Store | None, *, capacity: int = 100_000, flush_s: float = 2.0,
                 batch_size: int = 5_000) -> None:
        if capacity < 1 or batch_size < 1 or flush_s <= 0:
            raise ValueError("capacity and batch_size must be at least 1 and flush_s positive")
        self.store = store
        self.capacity = capacity
        self.flush_s = flush_s
        self.batch_size = batch_size
        self.yield_every = 100  # decisions written between pauses (see flush)
        self.pause_s = 0.005
        self._buffer: deque[LoggedDecision] = deque()
        self._counts: dict[tuple[int, str, str], int] = {}
        # Held only for an append or a swap of the buffers: never across a store write.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.dropped = 0
        self.written = 0
        self.write_failures = 0
        self.lost = 0  # decisions not written because the store failed
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the hot path -------------------------------------------------------------------------

    def record(self, at: float, kind: str, action: str, source: str, target: str, region: str,
               reasons: tuple[str, ...], score: float, language: str | None) -> None:
        """Count a decision and, unless it allows, buffer it for the log. Never blocks on the store."""
        key = (int(at // 60), kind, action)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            if action == "allow":
                return
            if len(self._buffer) >= self.capacity:
                self._buffer.popleft()  # the oldest goes: a decision is never held up by its log
                self.dropped += 1
            self._buffer.append(LoggedDecision(at, kind, action, source, target, region, reasons, score, language))

    def count_allow(self, at: float, kind: str) -> None:
        """Count one allow (the most common decision: kept as cheap as possible)."""
        key = (int(at // 60), kind, "allow")
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # --- flushing -----------------------------------------------------------------------------

    def _take(self) -> tuple[list[LoggedDecision], dict[tuple[int, str, str], int]]:
        with self._lock:  # swaps only: the lock is never held while copying or writing
            buffered, self._buffer = self._buffer, deque()
            counts, self._counts = self._counts, {}
        return list(buffered), counts

    def flush(self) -> int:
        """Write everything buffered so far; returns how many decisions were written."""
        with self._flush_lock:
            items, counts = self._take()
            if self.store is None or (not items and not counts):
                return 0
            try:
                # (only the background flusher pauses: a flush on shutdown or in a test goes at once)
                paused = threading.current_thread() is self._thread
                with self.store.begin() as conn:
                    step = min(self.batch_size, self.yield_every) if paused else self.batch_size
                    for start in range(0, len(items), step):
                        if start and paused:
                            # Preparing rows is Python work that holds the interpreter (~15 us a row):
                            # in slices with a pause between them, a served worker's event loop is
                            # held up ~1.5 ms at a time, never for a whole flush.
                            time.sleep(self.pause_s)
                        conn.execute(firewall_decisions.insert(), [_row(d) for d in items[start:start + step]])
                    _add_counts(conn, counts)
            except Exception as exc:  # the store being down must never reach a decision
                self.write_failures += 1
                self.lost += len(items)
                with self._lock:  # the counts are small: keep them for the next flush
                    for key, n in counts.items():
                        self._counts[key] = self._counts.get(key, 0) + n
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("firewall decision log: %d decisions not written: %s", len(items), self.last_error)
                return 0
            self.written += len(items)
            return len(items)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="firewall-decision-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.flush_s))
            self._thread = None
        self.flush()

    def stats(self) -> dict[str, Any]:
        return {"pending": self.pending, "capacity": self.capacity, "dropped": self.dropped,
                "written": self.written, "lost": self.lost, "write_failures": self.write_failures, "last_error": self.last_error}


def _row(d: LoggedDecision) -> dict[str, Any]:
    return {"decided_at": datetime.fromtimestamp(d.at, UTC), "kind": d.kind, "action": d.action,
            "source": d.source[:64], "target": d.target[:32], "region": d.region[:80], "reasons": list(d.reasons),
            "score": round(float(d.score), 2), "language": d.language}


def _add_counts(conn: Connection, counts: dict[tuple[int, str, str], int]) -> None:
    """Add per-minute counts to the stored ones (an upsert on both dialects)."""
    if not counts:
        return
    rows = [{"minute": datetime.fromtimestamp(minute * 60, UTC), "kind": kind, "action": action, "count": n}
            for (minute, kind, action), n in counts.items()]
    c = firewall_decision_counts.c
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"the decision log supports SQLite and PostgreSQL, not {dialect}")
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(firewall_decision_counts)
    stmt = insert.on_conflict_do_update(index_elements=[c.minute, c.kind, c.action],
                                        set_={"count": c.count + insert.excluded["count"]})
    conn.execute(stmt, rows)


# --- reads (console, statistics) ------------------------------------------------------------------

def _migrated(conn: Connection) -> bool:
    return inspect(conn).has_table(firewall_decisions.name)


def _check(value: str | None, allowed: Sequence[str], what: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise ValueError(f"{what} {str(value)[:20]!r} is not one of: {', '.join(allowed)}")
    return value


def recent_decisions(conn: Connection, *, limit: int = 100, action: str | None = None,
                     kind: str | None = None) -> list[dict[str, Any]]:
    """The latest logged marks and blocks, newest first, optionally of one action and kind."""
    action, kind = _check(action, LOGGED_ACTIONS, "action"), _check(kind, KINDS, "kind")
    if not _migrated(conn):
        return []
    d = firewall_decisions.c
    query = select(d.decided_at, d.kind, d.action, d.source, d.target, d.region, d.reasons, d.score, d.language)
    if action:
        query = query.where(d.action == action)
    if kind:
        query = query.where(d.kind == kind)
    rows = conn.execute(query.order_by(d.decided_at.desc(), d.decision_id.desc()).limit(max(1, min(limit, 1000))))
    return [{"decided_at": utc(r.decided_at), "kind": r.kind, "action": r.action, "source": r.source,
             "target": r.target, "region": r.region, "reasons": list(r.reasons or []), "score": r.score,
             "language": r.language} for r in rows]


def decision_counts(conn: Connection, *, since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, dict[str, int]]:
    """Counts of allow, mark and block per kind (``{"call": {"allow": n, ...}, "sms": {...}}``)."""
    out = {kind: dict.fromkeys(ACTIONS, 0) for kind in KINDS}
    if not _migrated(conn):
        return out
    c = firewall_decision_counts.c
    query = select(c.kind, c.action, func.sum(c.count)).group_by(c.kind, c.action)
    if since is not None:
        query = query.where(c.minute >= since)
    if until is not None:
        query = query.where(c.minute < until)
    for kind, action, n in conn.execute(query):
        out.setdefault(kind, dict.fromkeys(ACTIONS, 0))[action] = int(n or 0)
    return out
