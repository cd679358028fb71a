"""Statistics: percentiles, small-count suppression, the two-up-two-down view and the CSV export,
against records written for each test."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forewarn.model.indicators import utcnow
from forewarn.model.records import Case, CaseStatus, Warning
from forewarn.publishing import statistics as S
from forewarn.store import Store
from forewarn.store import repository as repo


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([0.0, 0.5, 0.95, 1.0]))
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    ours = S.percentile(sorted(values), q)
    assert ours == pytest.approx(float(np.percentile(values, q * 100)), rel=1e-9, abs=1e-6)


@given(st.integers(min_value=0, max_value=10_000))
def test_public_counts_under_five_are_never_printed(n: int) -> None:
    shown = S.show(float(n), n, "count", public=True)
    if 0 < n < 5:
        assert shown == "<5"
    else:
        assert shown == str(n)
    assert S.show(float(n), n, "count", public=False) == str(n)


def _cases(store: Store, now, current: int, previous: int, solved_now: int, solved_before: int) -> None:
    with store.begin() as conn:
        for i in range(current + previous):
            created = now - timedelta(days=5 + i % 20) if i < current else now - timedelta(days=35 + i % 20)
            solved = (i < solved_now) if i < current else (i - current < solved_before)
            repo.save_case(conn, Case(title=f"case {i}", status=CaseStatus.SOLVED if solved else CaseStatus.OPEN,
                                      centre_id="TH-10", loss_amount=1000.0, recovered_amount=100.0 if solved else 0.0,
                                      suspects_arrested=1 if solved else 0, created_at=created,
                                      updated_at=created + timedelta(hours=1)))


def test_two_up_two_down_reports_the_right_direction(store: Store) -> None:
    now = utcnow()
    _cases(store, now, current=6, previous=10, solved_now=6, solved_before=2)
    with store.engine.connect() as conn:
        report = S.compute_statistics(conn, end=now, compare_days=30)
    trends = {tr.metric: tr for tr in report.two_up_two_down}
    assert trends["cases_filed"].current.value == 6 and trends["cases_filed"].previous.value == 10
    assert trends["cases_filed"].good is True  # fewer cases filed is what we want
    assert trends["cases_solved"].current.value == 6 and trends["cases_solved"].good is True
    assert trends["losses"].current.value == 6000 and trends["losses"].good is True
    assert trends["suspects_arrested"].change == pytest.approx(2.0)


def test_public_trends_hide_small_cells(store: Store) -> None:
    now = utcnow()
    _cases(store, now, current=3, previous=10, solved_now=1, solved_before=2)
    with store.engine.connect() as conn:
        report = S.compute_statistics(conn, end=now, public=True)
    filed = next(tr for tr in report.two_up_two_down if tr.metric == "cases_filed")
    assert filed.current.shown == "<5" and filed.change is None and filed.good is None


def test_time_to_warning_percentiles_and_regions(store: Store) -> None:
    now = utcnow()
    delays = [30, 60, 90, 120, 600, 45, 75]
    with store.begin() as conn:
        repo.insert_warnings(conn, [Warning(recipient=f"+6681234{i:04d}", decisive_event_at=now - timedelta(hours=1),
                                            created_at=now - timedelta(hours=1) + timedelta(seconds=d))
                                    for i, d in enumerate(delays)])
    with store.engine.connect() as conn:
        report = S.compute_statistics(conn, end=now + timedelta(minutes=1), bucket="day")
    assert report.time_to_warning.n == len(delays)
    assert report.time_to_warning.p50_s == pytest.approx(float(np.percentile(delays, 50)))
    assert report.time_to_warning.p95_s == pytest.approx(float(np.percentile(delays, 95)))
    assert report.metrics["warnings"].total.value == len(delays)
    assert report.metrics["warnings"].by_region[S.UNASSIGNED].support == len(delays)


def test_unavailable_capabilities_are_reported_as_such_never_as_zero(store: Store) -> None:
    with store.engine.connect() as conn:
        report = S.compute_statistics(conn)
    for name in ("interceptions", "false_positive_appeals"):
        metric = report.metrics[name]
        if not metric.available:
            assert metric.reason and metric.total is None
    text = S.to_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["metric", "period", "region", "value", "records"]
    assert {r[0] for r in rows[1:]} >= set(S.METRIC_ORDER)


def test_public_csv_never_prints_a_small_count(store: Store) -> None:
    now = utcnow()
    _cases(store, now, current=7, previous=2, solved_now=3, solved_before=1)
    with store.engine.connect() as conn:
        report = S.compute_statistics(conn, end=now, bucket="day", public=True)
    for metric, _period, _region, value, records in list(csv.reader(io.StringIO(S.to_csv(report))))[1:]:
        if metric.startswith("time_to_warning"):
            assert value == "–" or int(records) >= 5  # percentiles of fewer than 5 warnings are hidden
        elif value in ("<5", "–"):
            assert records == ""
        elif value != "unavailable":
            assert int(records) == 0 or int(records) >= 5
    as_json = S.report_as_dict(report)
    assert as_json["public"] is True and isinstance(as_json["metrics"]["cases_filed"]["total"], str)


@pytest.mark.parametrize("kwargs", [{"bucket": "year"}, {"compare_days": 0},
                                    {"start": utcnow(), "end": utcnow() - timedelta(days=1)}])
def test_bad_parameters_are_refused_clearly(store: Store, kwargs) -> None:
    with store.engine.connect() as conn, pytest.raises(S.StatisticsError):
        S.compute_statistics(conn, **kwargs)


def test_statistics_api_public_and_internal(api, api_key) -> None:
    public = api.get("/v1/statistics/public")
    assert public.status_code == 200 and public.json()["public"] is True
    assert api.get("/v1/statistics/public", params={"format": "csv"}).text.startswith("metric,")
    assert api.get("/v1/statistics").status_code == 401
    assert api.get("/v1/statistics", headers=api_key("telco")).status_code == 403
    internal = api.get("/v1/statistics", headers=api_key("analyst"), params={"bucket": "month"})
    assert internal.status_code == 200 and internal.json()["public"] is False
    assert api.get("/v1/statistics/public", params={"bucket": "year"}).status_code == 422


def test_pruned_interceptions_count_their_records_for_suppression(store: Store) -> None:
    """A day rolled up by the firewall's prune is one fact standing for many decisions: a cell it
    builds is suppressed (or not) by the decisions it counts, as it was before the prune."""
    from forewarn.firewall.tables import firewall_decision_days

    now = utcnow()
    day = (now - timedelta(days=200)).replace(hour=0, minute=0, second=0, microsecond=0)
    with store.begin() as conn:
        conn.execute(firewall_decision_days.insert(), [
            {"day": day, "region": "TH-10", "kind": "call", "action": "block", "count": 3},
            {"day": day, "region": "TH-10", "kind": "sms", "action": "mark", "count": 4},
            {"day": day + timedelta(days=1), "region": "TH-50", "kind": "call", "action": "mark", "count": 2},
            {"day": day + timedelta(days=1), "region": "TH-50", "kind": "call", "action": "allow", "count": 50},
        ])
    with store.engine.connect() as conn:
        internal = S.compute_statistics(conn, start=day, end=now, bucket="day")
        public = S.compute_statistics(conn, start=day, end=now, bucket="day", public=True)
    metric = internal.metrics["interceptions"]
    assert metric.total is not None and (metric.total.value, metric.total.support) == (9, 9)  # allows are no interception
    assert (metric.by_region["TH-10"].value, metric.by_region["TH-10"].support) == (7, 7)
    assert list(metric.by_region) == ["TH-10", "TH-50"]  # most records first
    shown = public.metrics["interceptions"]
    assert shown.by_region["TH-10"].shown == "7" and shown.by_region["TH-50"].shown == "<5"
    assert shown.by_period[day.strftime("%Y-%m-%d")].shown == "7"
