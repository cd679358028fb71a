"""The one-command demo, end to end on a small scenario: simulate → ingest → detect → warn → report.

The figures in the report are checked for shape and consistency with the store and the ground
truth — not for particular values, which belong to the capability tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.config import load_settings
from forewarn.store import open_store
from forewarn.store import repository as repo

FORWARNING_KEYS = ("victims_warned_before_first_payment", "non_victims_warned", "median_seconds_to_warning")


def test_demo_runs_end_to_end_and_reports_against_ground_truth(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(data_dir), "--subscribers", "800", "--days", "1",
                                      "--seed", "3", "--no-serve", "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))

    store = open_store(load_settings(data_dir))
    with store.engine.connect() as conn:
        assert report["events"]["total"] == repo.count_events(conn)
        assert report["quarantined_rows"] == repo.count_quarantined(conn) == 0
        assert report["alerts"] == len(repo.list_alerts(conn, limit=100_000))
        assert report["warnings"] == len(repo.list_warnings(conn, limit=100_000))
    store.close()

    truth = pd.read_parquet(data_dir / "scenario" / "truth" / "fraud_numbers.parquet")
    suspects = report["suspects"]
    assert suspects["fraud_numbers"] == truth["number"].nunique()
    assert 0 <= suspects["true_positives"] <= suspects["suspects_flagged"]
    for key in ("precision", "recall"):
        assert report[key] is None or 0.0 <= report[key] <= 1.0
    for key in FORWARNING_KEYS:
        assert key in report
    assert 0.0 <= report["victims_warned_before_first_payment"] <= 1.0
    assert 0.0 <= report["non_victims_warned"] <= 1.0
    assert report["alerts"] > 0, "a scenario with fraud operations must raise alerts"
    # the breakdowns, computed separately from the ground truth, agree with the headline figures
    victims = report["victims_breakdown"]
    assert victims["victims"] == victims["paid_in_window"] + victims["paying_after_window"] > 0
    assert victims["paid_in_window_warned_before"] <= victims["paid_in_window"]
    assert victims["paying_after_window_warned"] <= victims["paying_after_window"]
    assert report["victims_warned_before_first_payment"] == round(
        victims["paid_in_window_warned_before"] / victims["paid_in_window"], 4)
    wrongly = report["non_victims_warned_breakdown"]
    assert wrongly["engaged_with_fraud"] <= wrongly["contacted_by_fraud"]
    non_victims = report["events"]["stored"]["subscriber"] - victims["victims"]
    assert report["non_victims_warned"] == round((wrongly["contacted_by_fraud"] + wrongly["never_contacted"])
                                                 / non_victims, 5)

    # Running the demo again starts from a clean node: the same seed gives the same figures.
    again = tmp_path / "report2.json"
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(data_dir), "--subscribers", "800", "--days", "1",
                                      "--seed", "3", "--no-serve", "--report", str(again)])
    assert result.exit_code == 0, result.output
    second = json.loads(again.read_text(encoding="utf-8"))
    assert second["events"]["total"] == report["events"]["total"]
    assert second["suspects"] == report["suspects"]
