"""Citizen reports weighted by track record (a flood of fresh reporters cannot mark an innocent
number), appeals with deadlines, analyst verdicts feeding the index and reporters' records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from forewarn.firewall.policy import load_policy
from forewarn.firewall.service import FirewallService
from forewarn.model.events import CitizenReport
from forewarn.model.indicators import Indicator, utcnow
from forewarn.reputation import appeals
from forewarn.reputation.reports import (
    ReportWeighting,
    ingest_report_events,
    ingest_stored_report_events,
    record_reports,
    reporter_record,
)
from forewarn.store import audit
from forewarn.store import repository as repo

INNOCENT = "+66812345678"
SCAMMER = "+66812340000"
CALLEE = "+66898765432"


def _report(i: int, value: str, reporter: str | None, verdict: str = "scam", when: Any = None) -> CitizenReport:
    return CitizenReport(event_id=f"r-{value[1:]}-{i}-{(reporter or 'anon').lstrip('+')}", reporter=reporter, indicator_type="phone",
                         indicator_value=value, verdict=verdict, reported_at=when or utcnow())


def _fw(store: Any) -> Any:
    return FirewallService(store, load_policy("TH"), counters=None, screener=None, start_refresher=False).firewall


def test_fifty_fresh_reporters_cannot_mark_an_innocent_number(store: Any) -> None:
    flood = [_report(i, INNOCENT, f"+6681000{i:04d}") for i in range(50)]
    anonymous = [_report(100 + i, INNOCENT, None) for i in range(500)]
    with store.begin() as conn:
        assert record_reports(conn, flood + anonymous) == 550
    fw = _fw(store)
    decision = fw.decide_call(INNOCENT, CALLEE)
    assert decision.action == "allow", decision
    assert decision.score < fw.policy.mark_threshold
    assert ReportWeighting().max_unproven_score() < fw.policy.mark_threshold


def test_reporters_with_a_track_record_can_mark_but_reports_never_block(store: Any) -> None:
    proven = [f"+6682000{i:04d}" for i in range(6)]
    with store.begin() as conn:
        # each proven reporter was right three times before (analysts confirmed those numbers)
        for j in range(3):
            past = f"+6683000{j:04d}"
            record_reports(conn, [_report(j, past, r, when=utcnow() - timedelta(days=2)) for r in proven])
            appeals.record_verdict(conn, "phone", past, "scam", "confirmed", actor="analyst:a")
        record_reports(conn, [_report(9, SCAMMER, r) for r in proven])
    assert reporter_record_ok(store, proven[0])
    decision = _fw(store).decide_call(SCAMMER, CALLEE)
    assert decision.action == "mark" and "reputation.citizen_reports" in decision.reasons


def reporter_record_ok(store: Any, reporter: str) -> bool:
    with store.engine.connect() as conn:
        rec = reporter_record(conn, reporter)
    return rec is not None and rec["confirmed"] == 3 and rec["proven"]


def test_refuted_reporters_lose_weight(store: Any) -> None:
    with store.begin() as conn:
        record_reports(conn, [_report(0, INNOCENT, "+66810000001")])
        appeals.record_verdict(conn, "phone", INNOCENT, "not_scam", "a clinic's line", actor="analyst:a")
        rec = reporter_record(conn, "+66810000001")
    assert rec is not None and rec["refuted"] == 1 and rec["trust"] < ReportWeighting().trust(0, 0)


def test_report_events_are_taken_in_idempotently(store: Any) -> None:
    events = [_report(i, SCAMMER, f"+6681000{i:04d}") for i in range(5)]
    with store.begin() as conn:
        assert ingest_report_events(conn, [e.model_dump(mode="json") for e in events]) == 5
        assert ingest_report_events(conn, events) == 0
        repo.insert_events(conn, [_report(50, SCAMMER, "+66810009999")])
        assert ingest_stored_report_events(conn) == 1
        assert ingest_stored_report_events(conn) == 0


def test_appeal_upheld_lifts_the_mark_and_is_audited(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=INNOCENT, confidence=95, source="behaviour.det"))
    assert _fw(store).decide_call(INNOCENT, CALLEE).action == "block"
    with store.begin() as conn:
        appeal = appeals.submit_appeal(conn, "phone", "081 234 5678".replace(" ", "").replace("0", "+66", 1),
                                       "owner@example.org", "This is my shop's line", deadline_hours=72)
    assert appeal["value"] == INNOCENT
    pending = _fw(store).decide_call(INNOCENT, CALLEE)
    assert pending.action == "block" and "appeal.pending" in pending.reasons
    with store.begin() as conn, pytest.raises(appeals.AppealError, match="already pending"):
        appeals.submit_appeal(conn, "phone", INNOCENT, "x", "again", deadline_hours=72)
    with store.begin() as conn:
        result = appeals.decide_appeal(conn, appeal["appeal_id"], "upheld", "verified: registered business",
                                       actor="analyst:lee")
    assert result["status"] == "upheld"
    assert _fw(store).decide_call(INNOCENT, CALLEE).action == "allow"
    with store.engine.connect() as conn:
        actions = [r.action for r in conn.execute(audit.t.audit_log.select())]
        assert "appeal.decide" in actions and "reputation.verdict" in actions
        assert audit.verify_chain(conn).ok
    # a new sighting after the decision counts again
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=INNOCENT, confidence=95, source="behaviour.det",
                                              last_seen=utcnow() + timedelta(seconds=1)))
    assert _fw(store).decide_call(INNOCENT, CALLEE, time=utcnow() + timedelta(seconds=2)).action == "block"


def test_rejected_appeal_confirms_the_mark(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=SCAMMER, confidence=60, source="behaviour.det"))
        appeal = appeals.submit_appeal(conn, "phone", SCAMMER, "x@example.org", "not me", deadline_hours=72)
        appeals.decide_appeal(conn, appeal["appeal_id"], "rejected", "matches a police case", actor="analyst:lee")
        with pytest.raises(appeals.AppealError, match="already decided"):
            appeals.decide_appeal(conn, appeal["appeal_id"], "upheld", "x", actor="analyst:lee")
    decision = _fw(store).decide_call(SCAMMER, CALLEE)
    assert decision.action == "block" and "reputation.analyst_confirmed" in decision.reasons


def test_overdue_appeal_lifts_the_mark_until_decided(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=INNOCENT, confidence=95, source="behaviour.det"))
        appeals.submit_appeal(conn, "phone", INNOCENT, "x@example.org", "wrong", deadline_hours=1,
                              now=utcnow() - timedelta(hours=2))
    decision = _fw(store).decide_call(INNOCENT, CALLEE)
    assert decision.action == "allow" and "appeal.overdue_lifted" in decision.reasons


def test_appeal_input_errors(store: Any) -> None:
    with store.begin() as conn:
        with pytest.raises(appeals.AppealError, match="invalid phone"):
            appeals.submit_appeal(conn, "phone", "12", "x", "y", deadline_hours=1)
        with pytest.raises(appeals.AppealError, match="cannot be appealed"):
            appeals.submit_appeal(conn, "imei", "490154203237518", "x", "y", deadline_hours=1)
        with pytest.raises(appeals.AppealError, match="contact"):
            appeals.submit_appeal(conn, "phone", INNOCENT, " ", "y", deadline_hours=1)
        with pytest.raises(appeals.AppealError, match="no appeal"):
            appeals.decide_appeal(conn, "apl-nope", "upheld", "r", actor="a")
