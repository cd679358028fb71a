"""Appeal decisions feeding the reputation: a rejected appeal confirms the value (it holds at full
score for the policy's verdict hold instead of lapsing like an unconfirmed sighting, and a later
appeal of it is shown with that decision and does not lift the mark by waiting out its deadline),
while an upheld appeal lifts the mark at once, well within the deadline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from forewarn.firewall.policy import load_policy
from forewarn.firewall.service import FirewallService
from forewarn.model.indicators import Indicator, utcnow
from forewarn.reputation import appeals
from forewarn.store import repository as repo
from forewarn.store import schema as t

SCAMMER = "+66812340000"
INNOCENT = "+66812345678"
CALLEE = "+66898765432"


def _fw(store: Any, policy_path: Path | None = None) -> Any:
    return FirewallService(store, load_policy("TH", policy_path), counters=None, screener=None,
                           start_refresher=False).firewall


def test_rejected_appeal_holds_where_an_unconfirmed_sighting_lapses(store: Any) -> None:
    long_ago = utcnow() - timedelta(days=30)  # three phone lifetimes (10 days) ago
    with store.begin() as conn:
        for number in (SCAMMER, INNOCENT):
            repo.upsert_indicator(conn, Indicator(type="phone", value=number, confidence=95, source="behaviour.det",
                                                  first_seen=long_ago, last_seen=long_ago))
        appeal = appeals.submit_appeal(conn, "phone", SCAMMER, "x@example.org", "not me", deadline_hours=72,
                                       now=long_ago)
        appeals.decide_appeal(conn, appeal["appeal_id"], "rejected", "matches a police case", actor="analyst:lee",
                              now=long_ago + timedelta(hours=1))
    fw = _fw(store)
    unconfirmed = fw.decide_call(INNOCENT, CALLEE)
    assert unconfirmed.action == "allow"  # the same sighting, never confirmed: lapsed
    confirmed = fw.decide_call(SCAMMER, CALLEE)
    assert confirmed.action == "block" and "reputation.analyst_confirmed" in confirmed.reasons


def test_the_confirmation_ends_after_the_hold(store: Any) -> None:
    decided = utcnow() - timedelta(days=180 + 11)  # the hold (180 days) and a phone lifetime ago
    with store.begin() as conn:
        appeals.record_verdict(conn, "phone", SCAMMER, "scam", "police case", actor="analyst:lee", now=decided)
    assert _fw(store).decide_call(SCAMMER, CALLEE).action == "allow"
    with store.begin() as conn:  # within the hold: full score
        appeals.record_verdict(conn, "phone", SCAMMER, "scam", "seen again", actor="analyst:lee",
                               now=utcnow() - timedelta(days=170))
    assert _fw(store).decide_call(SCAMMER, CALLEE).action == "block"


def test_a_second_appeal_is_shown_with_the_rejection_and_does_not_lift_by_deadline(store: Any,
                                                                                   tmp_path: Path) -> None:
    earlier = utcnow() - timedelta(days=5)
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=SCAMMER, confidence=60, source="behaviour.det"))
        first = appeals.submit_appeal(conn, "phone", SCAMMER, "a@example.org", "not me", deadline_hours=72,
                                      now=earlier)
        assert first["prior"] == {"appeals": [], "latest_verdict": None}
        appeals.decide_appeal(conn, first["appeal_id"], "rejected", "matches a police case", actor="analyst:lee",
                              now=earlier + timedelta(hours=2))
        second = appeals.submit_appeal(conn, "phone", SCAMMER, "b@example.org", "really not me",
                                       deadline_hours=1, now=utcnow() - timedelta(hours=3))
    for shown in (second, None):
        with store.engine.connect() as conn:
            shown = shown or appeals.get_appeal(conn, second["appeal_id"])
            listed = appeals.list_appeals(conn, "pending")
        assert shown is not None
        prior = shown["prior"]
        assert [a["appeal_id"] for a in prior["appeals"]] == [first["appeal_id"]]
        assert prior["appeals"][0]["status"] == "rejected" and prior["appeals"][0]["reason"] == "matches a police case"
        assert "contact" not in prior["appeals"][0]
        assert prior["latest_verdict"]["verdict"] == "scam" and prior["latest_verdict"]["appeal_id"] == first["appeal_id"]
        assert listed[0]["prior"] == prior
    with store.engine.connect() as conn:  # the first appeal is shown as of its own submission: nothing before it
        assert appeals.get_appeal(conn, first["appeal_id"])["prior"]["appeals"] == []  # type: ignore[index]
        details = [r.detail for r in conn.execute(select(t.audit_log.c.detail).where(
            t.audit_log.c.action == "appeal.submit").order_by(t.audit_log.c.seq))]
    assert [d["prior_verdict"] for d in details] == [None, "scam"]
    # past its deadline, the second appeal does not lift the confirmed mark
    decision = _fw(store).decide_call(SCAMMER, CALLEE)
    assert decision.action == "block"
    assert "appeal.pending" in decision.reasons and "appeal.overdue_lifted" not in decision.reasons
    # ... unless the policy says overdue appeals lift even confirmed values
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("appeals: {lift_overdue_after_rejection: true}\n")
    assert _fw(store, lenient).decide_call(SCAMMER, CALLEE).action == "allow"


def test_upheld_appeal_lifts_at_once_and_a_later_appeal_shows_it(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=INNOCENT, confidence=95, source="behaviour.det"))
        appeal = appeals.submit_appeal(conn, "phone", INNOCENT, "owner@example.org", "my shop", deadline_hours=72)
    fw = _fw(store)
    assert fw.decide_call(INNOCENT, CALLEE).action == "block"  # pending, deadline not reached: the mark stays
    with store.begin() as conn:
        decided = appeals.decide_appeal(conn, appeal["appeal_id"], "upheld", "verified shop line", actor="analyst:lee")
    assert decided["decided_at"] < appeal["deadline_at"]
    fw = _fw(store)
    lifted = fw.decide_call(INNOCENT, CALLEE)
    assert lifted.action == "allow" and "appeal.overdue_lifted" not in lifted.reasons
    with store.begin() as conn:  # seen scamming again later, then appealed again
        repo.upsert_indicator(conn, Indicator(type="phone", value=INNOCENT, confidence=95, source="behaviour.det2",
                                              first_seen=utcnow() + timedelta(seconds=1),
                                              last_seen=utcnow() + timedelta(seconds=1)))
        again = appeals.submit_appeal(conn, "phone", INNOCENT, "owner@example.org", "still my shop",
                                      deadline_hours=1, now=utcnow() - timedelta(hours=2))
    assert again["prior"]["latest_verdict"]["verdict"] == "not_scam"
    assert again["prior"]["appeals"][0]["status"] == "upheld"
    # not confirmed as a scam: the overdue appeal lifts the new mark as before
    assert "appeal.overdue_lifted" in _fw(store).decide_call(INNOCENT, CALLEE).reasons
