"""Citizen "scam" / "not scam" reports, weighted by each reporter's track record.

A reporter's trust is the posterior mean of a Beta(1, 9) prior updated by how often analysts
confirmed or refuted what they reported: a fresh reporter counts 0.1, a reliable one up to ~1.
Reports of *unproven* reporters (fewer than ``proven_after`` confirmations) together add at most
``unproven_cap`` evidence to a number, so that any crowd of fresh accounts, however large, stays
below the mark threshold: malicious reporting cannot get an innocent number marked, let alone
blocked (reports alone never block; the firewall caps them at "mark").

Reports arrive as ``report`` events through ingestion (:func:`ingest_report_events`) or directly
(:func:`record_reports`); analysts' verdicts settle them (:func:`settle_reports`), which is what
builds track records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select, update

from forewarn.model.events import CitizenReport
from forewarn.model.indicators import as_utc, utcnow
from forewarn.reputation import tables as rt
from forewarn.store.db import insert_ignoring_duplicates, utc


@dataclass(frozen=True)
class ReportWeighting:
    prior_confirmed: float = 1.0
    prior_refuted: float = 9.0
    proven_after: int = 3  # confirmations before a reporter's reports count in full
    unproven_cap: float = 0.4  # most evidence all unproven reporters of one value can add together
    anonymous_weight: float = 0.02

    def trust(self, confirmed: int, refuted: int) -> float:
        return (confirmed + self.prior_confirmed) / (confirmed + refuted + self.prior_confirmed + self.prior_refuted)

    def proven(self, confirmed: int, refuted: int) -> bool:
        return confirmed >= self.proven_after and self.trust(confirmed, refuted) >= 0.3

    def max_unproven_score(self) -> float:
        """The highest score (0–100) unproven reporters alone can give any value."""
        return 100.0 * (1.0 - math.exp(-self.unproven_cap))


@dataclass(frozen=True)
class ReportEvidence:
    indicator_type: str
    value: str
    score: float  # 0–100
    last_report: datetime
    scam_type: str | None
    reporters: int


def record_reports(conn: Connection, reports: Sequence[CitizenReport], source: str | None = None) -> int:
    """Store reports idempotently by their ``event_id``; updates reporters' counts. Returns how many were new."""
    rows: list[dict[str, Any]] = [{"report_id": r.event_id, "reporter": r.reporter, "indicator_type": r.indicator_type.value,
             "value": r.indicator_value, "verdict": r.verdict, "scam_type": r.scam_type,
             "reported_at": r.reported_at, "source": r.source or source, "settled_verdict": None} for r in reports]
    if not rows:
        return 0
    existing = {row[0] for row in conn.execute(select(rt.reports.c.report_id).where(
        rt.reports.c.report_id.in_([r["report_id"] for r in rows])))}
    fresh = [r for r in rows if r["report_id"] not in existing]
    fresh = list({r["report_id"]: r for r in fresh}.values())
    if not fresh:
        return 0
    insert_ignoring_duplicates(conn, rt.reports, fresh, ["report_id"])
    by_reporter: dict[str, list[datetime]] = defaultdict(list)
    for r in fresh:
        if r["reporter"]:
            by_reporter[str(r["reporter"])].append(as_utc(r["reported_at"]))
    if by_reporter:
        known = {row.reporter: row for row in conn.execute(select(rt.reporters).where(
            rt.reporters.c.reporter.in_(list(by_reporter))))}
        for reporter, times in by_reporter.items():
            row = known.get(reporter)
            if row is None:
                conn.execute(rt.reporters.insert().values(reporter=reporter, reports=len(times), confirmed=0,
                                                          refuted=0, first_report_at=min(times),
                                                          last_report_at=max(times)))
            else:
                conn.execute(update(rt.reporters).where(rt.reporters.c.reporter == reporter).values(
                    reports=row.reports + len(times),
                    last_report_at=max([utc(row.last_report_at) or times[0], *times])))
    return len(fresh)


def ingest_report_events(conn: Connection, events: Iterable[CitizenReport | dict[str, Any]]) -> int:
    """Take in ``report`` events (validated records or their JSON payloads, e.g. from the events table)."""
    parsed = [e if isinstance(e, CitizenReport) else CitizenReport.model_validate(e) for e in events]
    return record_reports(conn, parsed)


def ingest_stored_report_events(conn: Connection, since: datetime | None = None) -> int:
    """Copy ``report`` events already stored by ingestion into the report table (idempotent)."""
    from forewarn.store.repository import iter_event_payloads

    batch: list[CitizenReport] = []
    total = 0
    for payload in iter_event_payloads(conn, "report", since=since):
        batch.append(CitizenReport.model_validate(payload))
        if len(batch) >= 5000:
            total += record_reports(conn, batch)
            batch = []
    return total + record_reports(conn, batch)


def settle_reports(conn: Connection, indicator_type: str, value: str, verdict: str, at: datetime | None = None) -> int:
    """An analyst decided ``value`` is ``scam`` or ``not_scam``: score every unsettled report made
    before ``at`` against it, confirming or refuting its reporter. Returns how many were settled."""
    at = at or utcnow()
    rows = conn.execute(select(rt.reports.c.report_id, rt.reports.c.reporter, rt.reports.c.verdict).where(and_(
        rt.reports.c.indicator_type == indicator_type, rt.reports.c.value == value,
        rt.reports.c.settled_verdict.is_(None), rt.reports.c.reported_at <= at))).all()
    deltas: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        if row.reporter:
            deltas[row.reporter][0 if row.verdict == verdict else 1] += 1
    if rows:
        conn.execute(update(rt.reports).where(rt.reports.c.report_id.in_([r.report_id for r in rows]))
                     .values(settled_verdict=verdict))
    for reporter, (right, wrong) in deltas.items():
        conn.execute(update(rt.reporters).where(rt.reporters.c.reporter == reporter).values(
            confirmed=rt.reporters.c.confirmed + right, refuted=rt.reporters.c.refuted + wrong))
    return len(rows)


def report_evidence(conn: Connection, weighting: ReportWeighting | None = None,
                    cleared: dict[tuple[str, str], datetime] | None = None) -> list[ReportEvidence]:
    """Score every reported value from its unsettled-or-settled reports and its reporters' trust.

    Each reporter counts once per value (their latest report); reports older than the value's
    clearance (an upheld appeal) are ignored.
    """
    weighting = weighting or ReportWeighting()
    cleared = cleared or {}
    records = {row.reporter: (row.confirmed, row.refuted) for row in conn.execute(
        select(rt.reporters.c.reporter, rt.reporters.c.confirmed, rt.reporters.c.refuted))}
    latest: dict[tuple[str, str, str], Any] = {}
    anonymous: dict[tuple[str, str], list[Any]] = defaultdict(list)
    stmt = select(rt.reports.c.reporter, rt.reports.c.indicator_type, rt.reports.c.value, rt.reports.c.verdict,
                  rt.reports.c.scam_type, rt.reports.c.reported_at).order_by(rt.reports.c.reported_at)
    for row in conn.execute(stmt):
        at = utc(row.reported_at)
        clear_at = cleared.get((row.indicator_type, row.value))
        if clear_at is not None and at is not None and at <= clear_at:
            continue
        if row.reporter:
            latest[(row.indicator_type, row.value, row.reporter)] = row
        else:
            anonymous[(row.indicator_type, row.value)].append(row)
    per_value: dict[tuple[str, str], list[tuple[Any, float, bool]]] = defaultdict(list)
    for (kind, value, reporter), row in latest.items():
        confirmed, refuted = records.get(reporter, (0, 0))
        per_value[(kind, value)].append((row, weighting.trust(confirmed, refuted),
                                         weighting.proven(confirmed, refuted)))
    for key, rows in anonymous.items():
        per_value[key].extend((row, weighting.anonymous_weight, False) for row in rows)
    out: list[ReportEvidence] = []
    for (kind, value), items in per_value.items():
        sums = {"scam": [0.0, 0.0], "not_scam": [0.0, 0.0]}  # [unproven, proven]
        for row, weight, proven in items:
            sums[row.verdict][1 if proven else 0] += weight
        scam = min(weighting.unproven_cap, sums["scam"][0]) + sums["scam"][1]
        not_scam = min(weighting.unproven_cap, sums["not_scam"][0]) + sums["not_scam"][1]
        evidence = scam - not_scam
        if evidence <= 0:
            continue
        scam_rows = [row for row, _, _ in items if row.verdict == "scam"]
        types = [row.scam_type for row in scam_rows if row.scam_type]
        last = max(utc(row.reported_at) or datetime.min.replace(tzinfo=UTC) for row in scam_rows)
        out.append(ReportEvidence(kind, value, 100.0 * (1.0 - math.exp(-evidence)), last,
                                  max(set(types), key=types.count) if types else None, len(scam_rows)))
    return out


def reporter_record(conn: Connection, reporter: str) -> dict[str, Any] | None:
    row = conn.execute(select(rt.reporters).where(rt.reporters.c.reporter == reporter)).mappings().first()
    if row is None:
        return None
    weighting = ReportWeighting()
    return {**dict(row), "trust": weighting.trust(row["confirmed"], row["refuted"]),
            "proven": weighting.proven(row["confirmed"], row["refuted"])}
