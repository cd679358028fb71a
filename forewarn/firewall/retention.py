"""Retention of the firewall's decision log.

Individual marks and blocks (``firewall_decisions``, one row per decision: millions a day on a
busy node) are kept for the policy's ``retention.decisions_days`` (90 by default): long enough for
appeals, complaints and the analyst console, not forever. The per-minute counts
(``firewall_decision_counts``: at most six rows a minute, ~3 million a year whatever the traffic)
feed the statistics' long series and are kept forever unless ``retention.decision_counts_days``
says otherwise.

Pruned marks and blocks are not forgotten by the statistics: each batch is deleted and added to
the daily roll-up ``firewall_decision_days`` (UTC day, region, kind, action → count, kept forever)
in one transaction, from the rows the DELETE itself returns. A decision is therefore counted either
in the log or in the roll-up, never both: a crash rolls back the delete and the roll-up together,
a re-run prunes (and adds) only what is still in the log, and two pruners running at once each add
only the rows their own DELETE removed.

Rows are deleted in batches of ``retention.batch_size``, each in its own short transaction, so a
large first prune never holds a long lock against the decision log's writer (SQLite has one writer
at a time; PostgreSQL would otherwise hold one long transaction over millions of rows).
:class:`RetentionPruner` runs the pruning in the background of the long-running process (the
index publisher of ``forewarn firewall serve``, else the firewall service itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from forewarn.firewall.policy import Policy
from forewarn.firewall.tables import firewall_decision_counts, firewall_decision_days, firewall_decisions
from forewarn.store import Store
from forewarn.store.db import utc

log = logging.getLogger("forewarn.firewall.retention")


@dataclass(frozen=True)
class PruneResult:
    decisions_before: datetime
    counts_before: datetime | None
    decisions_deleted: int
    counts_deleted: int
    batches: int
    days_rolled_up: int = 0  # roll-up cells written, per batch (a cell two batches add to counts twice)

    def as_dict(self) -> dict[str, object]:
        return {"decisions_before": self.decisions_before.isoformat(),
                "counts_before": self.counts_before.isoformat() if self.counts_before else None,
                "decisions_deleted": self.decisions_deleted, "counts_deleted": self.counts_deleted,
                "batches": self.batches, "days_rolled_up": self.days_rolled_up}


def _start_of_day(at: datetime) -> datetime:
    """Cut-offs fall on UTC midnight, so that the statistics' oldest kept day is never half pruned."""
    at = at.astimezone(UTC)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def cutoffs(policy: Policy, now: datetime) -> tuple[datetime, datetime | None]:
    """Where the policy's retention cuts the decisions and the counts as of ``now``."""
    decisions = _start_of_day(now - timedelta(days=policy.decision_retention_days))
    counts = (_start_of_day(now - timedelta(days=policy.count_retention_days))
              if policy.count_retention_days is not None else None)
    return decisions, counts


def _migrated(conn: Connection) -> bool:
    return inspect(conn).has_table(firewall_decisions.name)


DAY_KEY = ("day", "region", "kind", "action")


def roll_up(conn: Connection, deleted: Iterable[Sequence[Any]]) -> int:
    """Add deleted decisions ``(decided_at, region, kind, action)`` to the daily roll-up, in the
    caller's transaction (the one that deleted them); returns how many roll-up cells were touched."""
    cells = Counter((_start_of_day(utc(at) or at), region, kind, action) for at, region, kind, action in deleted)
    if not cells:
        return 0
    rows = [dict(zip(DAY_KEY, key, strict=True), count=n) for key, n in cells.items()]
    t = firewall_decision_days
    if conn.dialect.name in ("sqlite", "postgresql"):
        # An atomic increment: a concurrent pruner adding to the same cell cannot lose an update.
        ins: Any = (sqlite.insert(t) if conn.dialect.name == "sqlite" else postgresql.insert(t))
        stmt = ins.on_conflict_do_update(index_elements=list(DAY_KEY),
                                         set_={"count": t.c["count"] + ins.excluded["count"]})
        conn.execute(stmt, rows)
    else:  # pragma: no cover - only the two supported backends
        for row in rows:
            key = [t.c[k] == row[k] for k in DAY_KEY]
            if conn.execute(update(t).where(*key).values(count=t.c["count"] + row["count"])).rowcount == 0:
                conn.execute(t.insert().values(**row))
    return len(cells)


def count_prunable(store: Store, decisions_before: datetime,
                   counts_before: datetime | None = None) -> tuple[int, int]:
    """How many decisions and count rows a prune with these cut-offs would delete."""
    with store.engine.connect() as conn:
        if not _migrated(conn):
            return 0, 0
        n = conn.execute(select(func.count()).select_from(firewall_decisions)
                         .where(firewall_decisions.c.decided_at < decisions_before)).scalar_one()
        m = 0
        if counts_before is not None:
            m = conn.execute(select(func.count()).select_from(firewall_decision_counts)
                             .where(firewall_decision_counts.c.minute < counts_before)).scalar_one()
    return int(n), int(m)


def prune(store: Store, decisions_before: datetime, counts_before: datetime | None = None, *,
          batch_size: int = 5_000, pause_s: float = 0.0,
          should_stop: threading.Event | None = None) -> PruneResult:
    """Delete decisions logged before ``decisions_before`` (and count rows before ``counts_before``,
    when given) in batches of ``batch_size``, each batch its own transaction; ``pause_s`` between
    batches lets the decision log's writer in. Stops early, between batches, when ``should_stop`` is set."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for name, at in (("decisions_before", decisions_before), ("counts_before", counts_before)):
        if at is not None and at.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
    with store.engine.connect() as conn:
        if not _migrated(conn):
            return PruneResult(decisions_before, counts_before, 0, 0, 0)
    d = firewall_decisions.c
    deleted = batches = cells = 0
    while should_stop is None or not should_stop.is_set():
        with store.begin() as conn:
            # By primary key through the decided_at index: the same statement on SQLite and
            # PostgreSQL (neither needs DELETE ... LIMIT), touching at most one batch of rows.
            ids = select(d.decision_id).where(d.decided_at < decisions_before).order_by(d.decision_id).limit(batch_size)
            # RETURNING gives exactly the rows this transaction removed (not those a concurrent
            # pruner got first), and the roll-up commits or rolls back with the delete.
            gone = conn.execute(delete(firewall_decisions).where(d.decision_id.in_(ids.scalar_subquery()))
                                .returning(d.decided_at, d.region, d.kind, d.action)).all()
            cells += roll_up(conn, gone)
        n = len(gone)
        batches += 1
        deleted += n
        if n < batch_size:
            break
        if pause_s > 0:
            time.sleep(pause_s)
    counts_deleted = 0
    if counts_before is not None and (should_stop is None or not should_stop.is_set()):
        c = firewall_decision_counts.c
        while True:
            with store.begin() as conn:
                # a day of minutes per batch at most (six rows a minute)
                oldest = conn.execute(select(func.min(c.minute))).scalar_one()
                if oldest is None:
                    break
                if oldest.tzinfo is None:
                    oldest = oldest.replace(tzinfo=UTC)
                upto = min(counts_before, oldest + timedelta(days=1))
                if oldest >= counts_before:
                    break
                n = conn.execute(delete(firewall_decision_counts).where(c.minute < upto)).rowcount
            batches += 1
            counts_deleted += max(n, 0)
            if upto >= counts_before or (should_stop is not None and should_stop.is_set()):
                break
    return PruneResult(decisions_before, counts_before, deleted, counts_deleted, batches, cells)


def prune_by_policy(store: Store, policy: Policy, now: datetime | None = None, *,
                    should_stop: threading.Event | None = None) -> PruneResult:
    """Prune what the policy's retention no longer keeps as of ``now``."""
    decisions_before, counts_before = cutoffs(policy, now or datetime.now(UTC))
    return prune(store, decisions_before, counts_before, batch_size=policy.prune_batch_size,
                 pause_s=policy.prune_pause_s, should_stop=should_stop)


class RetentionPruner:
    """Prunes by the policy every ``policy.prune_every_s`` in a background thread; the first run
    comes ``first_after_s`` after start (a process starting up has better things to do first).
    A failure (store unreachable) is logged and tried again at the next interval."""

    def __init__(self, store: Store, policy: Policy, *, first_after_s: float = 60.0) -> None:
        self.store = store
        self.policy = policy
        self.first_after_s = first_after_s
        self.runs = 0
        self.deleted = 0
        self.last_error: str | None = None
        self.last_result: PruneResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PruneResult | None:
        try:
            result = prune_by_policy(self.store, self.policy, should_stop=self._stop)
        except Exception as exc:  # the store may be briefly unreachable: try again next time
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("firewall retention: prune failed: %s", self.last_error)
            return None
        self.runs += 1
        self.deleted += result.decisions_deleted + result.counts_deleted
        self.last_result, self.last_error = result, None
        if result.decisions_deleted or result.counts_deleted:
            log.info("firewall retention: %d decisions before %s and %d count rows deleted",
                     result.decisions_deleted, result.decisions_before.date(), result.counts_deleted)
        return result

    def _run(self) -> None:
        wait = self.first_after_s
        while not self._stop.wait(wait):
            self.run_once()
            wait = self.policy.prune_every_s

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="firewall-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def stats(self) -> dict[str, object]:
        return {"decisions_days": self.policy.decision_retention_days,
                "decision_counts_days": self.policy.count_retention_days, "runs": self.runs,
                "deleted": self.deleted, "last_error": self.last_error,
                "last_run": self.last_result.as_dict() if self.last_result else None}
