"""The node's statistics: warnings, interceptions, losses and losses prevented, cases filed and
solved, suspects arrested, time-to-warning p50/p95 and false-positive appeals — over time and per
region, with the "two increases, two decreases" view (cases solved and suspects arrested up; losses
and cases filed down) and a CSV export.

A *region* is the responsible centre (alerts, warnings and cases carry a ``centre_id``). Public
figures suppress small cells: a count of 1–4 is shown as ``<5``, and a sum of money, a share or a
percentile built from fewer than 5 records is not shown, so no one person can be picked out.
Metrics whose capability is not installed are reported as unavailable with the reason, never as 0.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, inspect, select

from forewarn.model.indicators import utcnow
from forewarn.publishing.capabilities import optional
from forewarn.store import repository as repo
from forewarn.store import schema as t
from forewarn.store.db import utc

Bucket = Literal["day", "week", "month"]
SMALL_COUNT = 5
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class Fact:
    """One record's contribution to a metric: when, where and how much."""

    at: datetime
    region: str
    value: float = 1.0
    records: int = 1  # how many records it stands for (a day's roll-up of pruned decisions: many)


@dataclass(frozen=True)
class Cell:
    value: float
    support: int  # how many records it is built from
    shown: str


@dataclass
class Metric:
    name: str
    kind: Literal["count", "money"]
    available: bool = True
    reason: str | None = None
    total: Cell | None = None
    by_period: dict[str, Cell] = field(default_factory=dict)
    by_region: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class Percentiles:
    p50_s: float | None
    p95_s: float | None
    n: int
    shown_p50: str
    shown_p95: str


@dataclass(frozen=True)
class Trend:
    metric: str
    wanted: Literal["up", "down"]
    current: Cell
    previous: Cell
    change: float | None  # relative change, None when the previous period is 0 or suppressed
    good: bool | None


@dataclass
class StatisticsReport:
    start: datetime
    end: datetime
    bucket: Bucket
    public: bool
    metrics: dict[str, Metric]
    time_to_warning: Percentiles
    time_to_warning_by_period: dict[str, Percentiles]
    two_up_two_down: list[Trend]
    compare_days: int
    region_names: dict[str, str]


METRIC_ORDER = ("warnings", "interceptions", "losses_prevented", "losses", "cases_filed", "cases_solved",
                "suspects_arrested", "false_positive_appeals")
WANTED: dict[str, Literal["up", "down"]] = {"cases_solved": "up", "suspects_arrested": "up",
                                            "losses": "down", "cases_filed": "down"}


class StatisticsError(ValueError):
    """Bad parameters for a statistics request; the message says which."""


def period_of(at: datetime, bucket: Bucket) -> str:
    if bucket == "day":
        return at.strftime("%Y-%m-%d")
    if bucket == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return at.strftime("%Y-%m")


def show(value: float, support: int, kind: str, public: bool) -> str:
    """How a cell is printed: small counts suppressed in public figures."""
    if public and 0 < support < SMALL_COUNT:
        return f"<{SMALL_COUNT}" if kind == "count" else "–"
    if kind == "money":
        return f"{value:,.0f}"
    return f"{int(value)}" if float(value).is_integer() else f"{value:.1f}"


def _cell(facts: list[Fact], kind: str, public: bool) -> Cell:
    value = float(sum(f.value for f in facts))
    support = sum(f.records for f in facts)
    return Cell(value, support, show(value, support, kind, public))


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _percentiles(values: list[float], public: bool) -> Percentiles:
    ordered = sorted(values)
    p50, p95 = percentile(ordered, 0.5), percentile(ordered, 0.95)
    hidden = public and 0 < len(ordered) < SMALL_COUNT
    return Percentiles(p50, p95, len(ordered), "–" if hidden or p50 is None else format_duration(p50),
                       "–" if hidden or p95 is None else format_duration(p95))


def format_duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{sign}{seconds:.0f} s"
    if seconds < 7200:
        return f"{sign}{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{sign}{seconds / 3600:.1f} h"
    return f"{sign}{seconds / 86_400:.1f} d"


# --- facts from the core records ------------------------------------------------------------------

def _alert_centres(conn: Connection) -> dict[str, str | None]:
    return {r.alert_id: r.centre_id for r in conn.execute(select(t.alerts.c.alert_id, t.alerts.c.centre_id))}


def _warning_meta(conn: Connection) -> dict[str, datetime]:
    """When forewarning queued each warning on the events' clock (trigger time + processing latency).

    On a live node this equals ``created_at``; on a replay of past events it is the time the warning
    would have gone out, which is what time-to-warning must measure. Empty without forewarning.
    """
    try:
        from forewarn.forewarning import tables as ft
    except ImportError:
        return {}
    if not inspect(conn).has_table(ft.fw_warning_meta.name):
        return {}
    m = ft.fw_warning_meta.c
    out: dict[str, datetime] = {}
    for warning_id, trigger_at, latency in conn.execute(select(m.warning_id, m.trigger_at, m.latency_s)):
        base = utc(trigger_at)
        if base is not None:
            out[warning_id] = base + timedelta(seconds=float(latency or 0))
    return out


def warning_facts(conn: Connection, start: datetime, end: datetime) -> tuple[list[Fact], list[tuple[Fact, float]]]:
    """Warnings sent (not failed), and for those with a decisive event the time it took to warn."""
    centres = _alert_centres(conn)
    queued = _warning_meta(conn)
    rows = conn.execute(select(t.warnings_.c.warning_id, t.warnings_.c.created_at, t.warnings_.c.alert_id,
                               t.warnings_.c.decisive_event_at)
                        .where(t.warnings_.c.status != "failed"))
    facts: list[Fact] = []
    delays: list[tuple[Fact, float]] = []
    for row in rows:
        at = queued.get(row.warning_id) or utc(row.created_at)
        assert at is not None
        if not start <= at < end:
            continue
        fact = Fact(at, (centres.get(row.alert_id) if row.alert_id else None) or UNASSIGNED)
        facts.append(fact)
        decisive = utc(row.decisive_event_at)
        if decisive is not None:
            delays.append((fact, (at - decisive).total_seconds()))
    return facts, delays


def case_facts(conn: Connection, start: datetime, end: datetime) -> dict[str, list[Fact]]:
    """Cases filed (and their losses) by creation time; solved, arrests and recoveries by last update."""
    out: dict[str, list[Fact]] = defaultdict(list)
    for row in conn.execute(select(t.cases.c.status, t.cases.c.centre_id, t.cases.c.loss_amount,
                                   t.cases.c.recovered_amount, t.cases.c.suspects_arrested,
                                   t.cases.c.created_at, t.cases.c.updated_at)):
        region = row.centre_id or UNASSIGNED
        created, updated = utc(row.created_at), utc(row.updated_at)
        assert created is not None and updated is not None
        if start <= created < end:
            out["cases_filed"].append(Fact(created, region))
            if row.loss_amount:
                out["losses"].append(Fact(created, region, float(row.loss_amount)))
        if start <= updated < end:
            if row.status == "solved":
                out["cases_solved"].append(Fact(updated, region))
            if row.suspects_arrested:
                out["suspects_arrested"].append(Fact(updated, region, float(row.suspects_arrested)))
            if row.recovered_amount:
                out["losses_prevented"].append(Fact(updated, region, float(row.recovered_amount)))
    return out


# --- facts from capabilities that may not be installed ---------------------------------------------

FactSource = Callable[[Connection, datetime, datetime], Iterable[tuple[Any, ...]]]


def _capability_source(module: str, function: str) -> tuple[FactSource | None, str | None]:
    cap = optional(module, function)
    source = cap.attr(function)
    return (source if callable(source) else None), cap.reason  # type: ignore[return-value]


# The capability modules offer these functions (``(conn, start, end) -> iterable of
# (at, region, value)`` or ``(at, region, value, records)`` for a fact that stands for several
# records); until they do, the metric is reported as unavailable.
CAPABILITY_SOURCES: dict[str, tuple[str, str]] = {
    "interceptions": ("forewarn.firewall.stats", "interception_facts"),
    "false_positive_appeals": ("forewarn.publishing.statistics", "upheld_appeal_facts"),
    "prevented_outcomes": ("forewarn.publishing.statistics", "task_outcome_facts"),
}


def upheld_appeal_facts(conn: Connection, start: datetime, end: datetime) -> list[tuple[datetime, str, float]]:
    """Appeals upheld by an analyst (a wrong mark lifted), from the reputation capability's appeals.

    Appeals carry no centre, so they count towards the national figure only. Raises ImportError
    when the reputation capability is not installed (the metric is then unavailable).
    """
    from forewarn.reputation import tables as rt

    if not inspect(conn).has_table(rt.appeals.name):
        raise ImportError("the reputation tables are not migrated on this store", name="forewarn.reputation")
    a = rt.appeals.c
    rows = conn.execute(select(a.decided_at).where(a.status == "upheld", a.decided_at >= start, a.decided_at < end))
    return [(utc(r.decided_at), UNASSIGNED, 1.0) for r in rows]  # type: ignore[misc]


def task_outcome_facts(conn: Connection, start: datetime, end: datetime) -> list[tuple[datetime, str, float]]:
    """Losses prevented by officers' interventions, from the centres capability's task outcomes.

    Raises ImportError when the centres capability is not installed (the metric then counts case
    recoveries only).
    """
    from forewarn.centres import tables as ct

    if not inspect(conn).has_table(ct.task_outcomes.name):
        return []
    o, k = ct.task_outcomes.c, ct.centre_tasks.c
    rows = conn.execute(select(o.recorded_at, k.centre_id, o.loss_prevented)
                        .select_from(ct.task_outcomes.outerjoin(ct.centre_tasks, o.task_id == k.task_id))
                        .where(o.recorded_at >= start, o.recorded_at < end, o.loss_prevented > 0))
    return [(utc(r.recorded_at), r.centre_id or UNASSIGNED, float(r.loss_prevented)) for r in rows]  # type: ignore[misc]


def capability_facts(conn: Connection, name: str, start: datetime, end: datetime) -> tuple[list[Fact] | None, str | None]:
    module, function = CAPABILITY_SOURCES[name]
    source, reason = _capability_source(module, function)
    if source is None:
        return None, reason
    facts = []
    try:
        found = list(source(conn, start, end))
    except ImportError as exc:
        return None, f"{exc.name or exc} is not installed on this node"
    for at, region, value, *records in found:
        when = utc(at)
        assert when is not None
        facts.append(Fact(when, region or UNASSIGNED, float(value), int(records[0]) if records else 1))
    return facts, None


# --- the report -----------------------------------------------------------------------------------

def _metric(name: str, kind: Literal["count", "money"], facts: list[Fact] | None, bucket: Bucket,
            public: bool, reason: str | None = None) -> Metric:
    if facts is None:
        return Metric(name, kind, available=False, reason=reason)
    by_period: dict[str, list[Fact]] = defaultdict(list)
    by_region: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_period[period_of(fact.at, bucket)].append(fact)
        by_region[fact.region].append(fact)
    return Metric(name, kind, True, None, _cell(facts, kind, public),
                  {p: _cell(v, kind, public) for p, v in sorted(by_period.items())},
                  {r: _cell(v, kind, public) for r, v in sorted(by_region.items(), key=lambda kv: (-sum(f.records for f in kv[1]), kv[0]))})


def compute_statistics(conn: Connection, *, start: datetime | None = None, end: datetime | None = None,
                       bucket: Bucket = "week", public: bool = False, compare_days: int = 30) -> StatisticsReport:
    """Every figure over ``[start, end)`` (default: the last 180 days), bucketed by day, week or month."""
    if bucket not in ("day", "week", "month"):
        raise StatisticsError(f"unknown bucket {bucket!r}; use day, week or month")
    if not 1 <= compare_days <= 366:
        raise StatisticsError("compare_days must be between 1 and 366")
    end = utc(end) or utcnow()
    start = utc(start) or end - timedelta(days=180)
    if start >= end:
        raise StatisticsError("start must be before end")
    if (end - start).days > 3660:
        raise StatisticsError("a statistics window is at most ten years")
    # Facts reach back far enough for the two-period comparison, whatever the window.
    earliest = min(start, end - timedelta(days=2 * compare_days))
    warnings, delays = warning_facts(conn, earliest, end)
    cases = case_facts(conn, earliest, end)
    intercepts, intercept_reason = capability_facts(conn, "interceptions", earliest, end)
    appeals, appeal_reason = capability_facts(conn, "false_positive_appeals", earliest, end)
    outcomes, _ = capability_facts(conn, "prevented_outcomes", earliest, end)
    prevented = cases.get("losses_prevented", []) + (outcomes or [])

    def window(facts: Iterable[Fact] | None) -> list[Fact] | None:
        return None if facts is None else [f for f in facts if start <= f.at < end]

    all_facts: dict[str, tuple[Literal["count", "money"], list[Fact] | None, str | None]] = {
        "warnings": ("count", warnings, None),
        "interceptions": ("count", intercepts, intercept_reason),
        "losses_prevented": ("money", prevented, None),
        "losses": ("money", cases.get("losses", []), None),
        "cases_filed": ("count", cases.get("cases_filed", []), None),
        "cases_solved": ("count", cases.get("cases_solved", []), None),
        "suspects_arrested": ("count", cases.get("suspects_arrested", []), None),
        "false_positive_appeals": ("count", appeals, appeal_reason),
    }
    metrics = {name: _metric(name, kind, window(facts), bucket, public, reason)
               for name, (kind, facts, reason) in all_facts.items()}
    in_window = [(f, d) for f, d in delays if start <= f.at < end]
    per_period: dict[str, list[float]] = defaultdict(list)
    for fact, delay in in_window:
        per_period[period_of(fact.at, bucket)].append(delay)
    trends = []
    boundary, before = end - timedelta(days=compare_days), end - timedelta(days=2 * compare_days)
    for name, wanted in WANTED.items():
        kind, facts, _ = all_facts[name]
        current = _cell([f for f in facts or [] if boundary <= f.at < end], kind, public)
        previous = _cell([f for f in facts or [] if before <= f.at < boundary], kind, public)
        suppressed = public and (0 < current.support < SMALL_COUNT or 0 < previous.support < SMALL_COUNT)
        change = None if suppressed or previous.value == 0 else (current.value - previous.value) / previous.value
        if suppressed or current.value == previous.value:
            good = None
        else:
            good = (current.value > previous.value) == (wanted == "up")
        trends.append(Trend(name, wanted, current, previous, change, good))
    names = {c.centre_id: c.name for c in repo.list_centres(conn)}
    names.setdefault(UNASSIGNED, UNASSIGNED)
    return StatisticsReport(start, end, bucket, public, metrics, _percentiles([d for _, d in in_window], public),
                            {p: _percentiles(v, public) for p, v in sorted(per_period.items())}, trends,
                            compare_days, names)


def to_csv(report: StatisticsReport) -> str:
    """Long-format CSV: ``metric,period,region,value,records`` with totals, periods and regions.

    Public reports print the suppressed value and leave ``records`` blank for suppressed cells.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "period", "region", "value", "records"])

    def row(metric: str, period: str, region: str, cell: Cell) -> None:
        hidden = report.public and 0 < cell.support < SMALL_COUNT
        value = cell.shown if hidden else (f"{cell.value:.2f}" if not float(cell.value).is_integer() else str(int(cell.value)))
        writer.writerow([metric, period, region, value, "" if hidden and report.public else cell.support])

    for name in METRIC_ORDER:
        metric = report.metrics[name]
        if not metric.available or metric.total is None:
            writer.writerow([name, "all", "all", "unavailable", ""])
            continue
        row(name, "all", "all", metric.total)
        for period, cell in metric.by_period.items():
            row(name, period, "all", cell)
        for region, cell in metric.by_region.items():
            row(name, "all", report.region_names.get(region, region), cell)
    ttw = report.time_to_warning
    for label, value, shown in (("time_to_warning_p50_s", ttw.p50_s, ttw.shown_p50),
                                ("time_to_warning_p95_s", ttw.p95_s, ttw.shown_p95)):
        hidden = report.public and 0 < ttw.n < SMALL_COUNT
        writer.writerow([label, "all", "all", shown if hidden or value is None else f"{value:.0f}",
                         "" if hidden else ttw.n])
    return buffer.getvalue()


def report_as_dict(report: StatisticsReport) -> dict[str, Any]:
    """A JSON-ready view; public reports carry only the printed (suppressed) values."""

    def cell(c: Cell | None) -> Any:
        if c is None:
            return None
        if report.public:
            return c.shown
        return {"value": c.value, "records": c.support}

    metrics: dict[str, Any] = {}
    for name in METRIC_ORDER:
        m = report.metrics[name]
        metrics[name] = ({"available": False, "reason": m.reason} if not m.available else
                         {"available": True, "kind": m.kind, "total": cell(m.total),
                          "by_period": {p: cell(c) for p, c in m.by_period.items()},
                          "by_region": {report.region_names.get(r, r): cell(c) for r, c in m.by_region.items()}})
    ttw = report.time_to_warning
    return {
        "start": report.start.astimezone(UTC).isoformat(), "end": report.end.astimezone(UTC).isoformat(),
        "bucket": report.bucket, "public": report.public, "metrics": metrics,
        "time_to_warning": ({"p50": ttw.shown_p50, "p95": ttw.shown_p95} if report.public else
                            {"p50_s": ttw.p50_s, "p95_s": ttw.p95_s, "warnings": ttw.n}),
        "two_up_two_down": [{"metric": tr.metric, "wanted": tr.wanted, "current": cell(tr.current),
                             "previous": cell(tr.previous), "change": tr.change, "good": tr.good}
                            for tr in report.two_up_two_down],
        "compare_days": report.compare_days,
    }
