"""Building a reputation snapshot from the store.

Sources, each turned into rows of (key, effective confidence, last seen, flags, scam type):
- the core ``indicators`` table (active, non-revoked), each row's confidence scaled by its source's
  weight and raised by its sightings;
- analysts' verdicts: ``scam`` (a rejected appeal, or a verdict on its own) counts as a confirmed
  source that does not decay for ``verdict_hold_days`` (it is treated as seen at every build until
  then, and decays over the type's lifetime afterwards), ``not_scam`` clears every row and report
  about the value seen up to the verdict (a later sighting counts again);
- citizen reports, weighted by their reporters' track records (:mod:`forewarn.reputation.reports`);
- pending appeals flag their entries, and those past their deadline are lifted, except (unless the
  policy says otherwise) when an analyst's latest verdict on the value is ``scam``: re-appealing a
  confirmed value does not unblock it by waiting out the deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from forewarn.model.indicators import utcnow
from forewarn.reputation import tables as rt
from forewarn.reputation.allowlist import load_allow_lists
from forewarn.reputation.decay import DecayModel
from forewarn.reputation.index import (
    APPEAL_OVERDUE,
    APPEAL_PENDING,
    PARTNER,
    REPORTS,
    TRUSTED,
    VERDICT,
    ReputationSnapshot,
)
from forewarn.reputation.keys import indicator_key
from forewarn.reputation.reports import ReportWeighting, report_evidence
from forewarn.store import schema as t
from forewarn.store.db import utc

PARTNER_PREFIX = "partner:"


@dataclass(frozen=True)
class ReputationConfig:
    """How sources are weighted and how scores decay. ``source_weights`` maps a source name or a
    prefix ending in ``:`` (``partner:``, ``citizen:``) to a weight in [0, 1]; the longest match wins."""

    decay: DecayModel = field(default_factory=DecayModel)
    source_weights: Mapping[str, float] = field(default_factory=lambda: {"partner:": 1.0})
    default_source_weight: float = 1.0
    verdict_confidence: float = 0.95
    verdict_hold_days: float = 180.0
    lift_overdue_after_confirmation: bool = False
    reports: ReportWeighting = field(default_factory=ReportWeighting)

    def weight(self, source: str) -> float:
        if source in self.source_weights:
            return self.source_weights[source]
        best = ""
        for prefix in self.source_weights:
            if prefix.endswith(":") and source.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.source_weights[best] if best else self.default_source_weight


def effective_confidence(confidence: float, weight: float, sightings: int) -> float:
    """One row's confidence in [0, 1): each further sighting adds evidence, with diminishing returns."""
    base = min(0.999, max(0.0, confidence / 100.0 * weight))
    exponent = min(3.0, 1.0 + 0.5 * math.log(max(1, sightings)))
    return 1.0 - (1.0 - base) ** exponent


class _Rows:
    def __init__(self) -> None:
        self.keys: list[int] = []
        self.conf: list[float] = []
        self.seen: list[float] = []
        self.flags: list[int] = []
        self.scam: list[int] = []
        self.scam_types: list[str | None] = [None]
        self._scam_codes: dict[str, int] = {}

    def scam_code(self, scam_type: str | None) -> int:
        if not scam_type:
            return 0
        code = self._scam_codes.get(scam_type)
        if code is None:
            if len(self.scam_types) >= 255:  # uint8 codes; a rarer type is kept unnamed
                return 0
            code = self._scam_codes[scam_type] = len(self.scam_types)
            self.scam_types.append(scam_type)
        return code

    def add(self, key: int, conf: float, seen: float, flags: int, scam_type: str | None) -> None:
        self.keys.append(key)
        self.conf.append(conf)
        self.seen.append(seen)
        self.flags.append(flags)
        self.scam.append(self.scam_code(scam_type))


def _key(kind: str, value: str) -> int | None:
    try:
        return indicator_key(kind, value)
    except ValueError:  # a malformed stored value never stops a refresh
        return None


def load_snapshot(conn: Connection, config: ReputationConfig | None = None,
                  now: datetime | None = None) -> ReputationSnapshot:
    """A complete snapshot of the node's reputation as of ``now``."""
    config = config or ReputationConfig()
    now = now or utcnow()
    rows = _Rows()

    verdict_rows = conn.execute(select(rt.verdicts.c.indicator_type, rt.verdicts.c.value, rt.verdicts.c.verdict,
                                       rt.verdicts.c.decided_at).order_by(rt.verdicts.c.decided_at, rt.verdicts.c.id))
    latest_verdict: dict[tuple[str, str], Any] = {}
    for row in verdict_rows:
        latest_verdict[(row.indicator_type, row.value)] = row
    cleared: dict[tuple[str, str], datetime] = {}
    confirmed: set[int] = set()
    hold_s = config.verdict_hold_days * 86_400.0
    for (kind, value), row in latest_verdict.items():
        decided = utc(row.decided_at)
        assert decided is not None
        if row.verdict == "not_scam":
            cleared[(kind, value)] = decided
        else:
            key = _key(kind, value)
            if key is not None:
                # Confirmed by an analyst: as fresh as a sighting now until the hold ends (snapshots
                # are rebuilt at least every few minutes), so it does not lapse like an unconfirmed one.
                held_until = decided.timestamp() + hold_s
                rows.add(key, config.verdict_confidence, max(decided.timestamp(), min(now.timestamp(), held_until)),
                         TRUSTED | VERDICT, None)
                confirmed.add(key)
    cleared_keys = {k: v.timestamp() for (kind, value), v in cleared.items() if (k := _key(kind, value)) is not None}

    ind = t.indicators.c
    stmt = select(ind.type, ind.value, ind.confidence, ind.source, ind.last_seen, ind.sightings, ind.scam_type).where(
        ind.revoked.is_(False), (ind.expires_at.is_(None)) | (ind.expires_at > now))
    weights: dict[str, float] = {}
    result = conn.execution_options(stream_results=True, yield_per=50_000).execute(stmt)
    for kind, value, confidence, source, last_seen, sightings, scam_type in result:
        key = int(value[1:]) if kind == "phone" and value[1:].isdigit() else _key(kind, value)
        if key is None:
            continue
        seen = utc(last_seen).timestamp()  # type: ignore[union-attr]
        clear_at = cleared_keys.get(key)
        if clear_at is not None and seen <= clear_at:
            continue
        weight = weights.get(source)
        if weight is None:
            weight = weights[source] = config.weight(source)
        flags = TRUSTED | (PARTNER if source.startswith(PARTNER_PREFIX) else 0)
        rows.add(key, effective_confidence(confidence, weight, sightings or 1), seen, flags, scam_type)

    for ev in report_evidence(conn, config.reports, cleared):
        key = _key(ev.indicator_type, ev.value)
        if key is not None:
            rows.add(key, ev.score / 100.0, ev.last_report.timestamp(), REPORTS, ev.scam_type)

    snapshot = ReputationSnapshot.from_rows(
        np.asarray(rows.keys, dtype=np.int64), np.asarray(rows.conf), np.asarray(rows.seen),
        np.asarray(rows.flags, dtype=np.uint8), np.asarray(rows.scam, dtype=np.uint8), rows.scam_types,
        config.decay, load_allow_lists(conn, now), built_at=time.time())

    pending: list[int] = []
    overdue: list[int] = []
    for appeal in conn.execute(select(rt.appeals.c.indicator_type, rt.appeals.c.value, rt.appeals.c.deadline_at)
                            .where(rt.appeals.c.status == "pending")):
        key = _key(appeal.indicator_type, appeal.value)
        if key is None:
            continue
        deadline = utc(appeal.deadline_at)
        lifts = config.lift_overdue_after_confirmation or key not in confirmed
        (overdue if lifts and deadline is not None and deadline <= now else pending).append(key)
    if pending:
        snapshot = snapshot.with_flags(pending, APPEAL_PENDING)
    if overdue:
        snapshot = snapshot.with_flags(overdue, APPEAL_PENDING | APPEAL_OVERDUE)
    return snapshot


def store_fingerprint(conn: Connection) -> tuple[Any, ...]:
    """A cheap summary of everything a snapshot is built from: when it has not changed, a refresh
    can keep the current snapshot instead of re-reading millions of rows (which would hold the
    interpreter for seconds and stall decisions)."""
    from sqlalchemy import func

    ind = t.indicators.c
    parts: list[Any] = list(conn.execute(select(func.count(), func.max(ind.id), func.max(ind.last_seen),
                                                func.sum(ind.sightings), func.sum(ind.confidence))
                                         .where(ind.revoked.is_(False))).one())
    for table, stamp in ((rt.verdicts, rt.verdicts.c.decided_at), (rt.reports, rt.reports.c.reported_at),
                         (rt.allowlist, rt.allowlist.c.added_at), (rt.appeals, rt.appeals.c.submitted_at),
                         (rt.reporters, rt.reporters.c.last_report_at)):
        parts.extend(conn.execute(select(func.count(), func.max(stamp)).select_from(table)).one())
    parts.extend(conn.execute(select(func.count()).select_from(rt.appeals).where(rt.appeals.c.status == "pending")).one())
    parts.append(conn.execute(select(func.count()).select_from(t.indicators).where(ind.revoked.is_(True))).scalar_one())
    return tuple(str(p) for p in parts)
