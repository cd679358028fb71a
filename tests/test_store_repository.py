"""The store on SQLite and PostgreSQL: migrations, repository round trips, idempotency, audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from forewarn.model import CallRecord, Indicator, IndicatorType, Message, Payment
from forewarn.model.indicators import TLP
from forewarn.model.records import (
    Alert,
    AlertRole,
    AlertStatus,
    Case,
    Centre,
    CentreLevel,
    Signal,
    SubjectType,
    Warning,
)
from forewarn.store import audit
from forewarn.store import repository as repo
from forewarn.store.tables import all_metadata

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)


def _call(i: int) -> CallRecord:
    return CallRecord(event_id=f"c-{i}", caller="+66812345678", callee="+8613800138000", start=T0 + timedelta(seconds=i),
                      duration_s=10 + i)


def test_migrations_create_every_table(any_store):
    names = set(inspect(any_store.engine).get_table_names())
    assert set(all_metadata().tables) <= names
    assert "alembic_version" in names


def test_events_round_trip_and_idempotent_insert(any_store):
    msg = Message(event_id="m-1", sender="BANK-TH", recipient="+66812345678", text="Your OTP is 1234",
                  sent_at=T0)
    pay = Payment(event_id="p-1", payer_account="KBANK:1234567890", payee_account="SCB:99998888",
                  amount="1500.50", currency="thb", paid_at=T0)
    with any_store.begin() as conn:
        assert repo.insert_events(conn, [_call(1), _call(2), msg, pay], batch_id="b1") == 4
    with any_store.begin() as conn:
        assert repo.insert_events(conn, [_call(1), _call(3)], batch_id="b2") == 1
    with any_store.engine.connect() as conn:
        assert repo.count_events(conn) == 5
        assert repo.count_events(conn, "call") == 3
        payloads = list(repo.iter_event_payloads(conn, "call"))
        assert [p["event_id"] for p in payloads] == ["c-1", "c-2", "c-3"]
        assert CallRecord.model_validate(payloads[1]) == _call(2)
        (stored_pay,) = repo.iter_event_payloads(conn, "payment")
        assert Payment.model_validate(stored_pay) == pay
        assert stored_pay["currency"] == "THB"


def test_quarantine_rows(any_store):
    with any_store.begin() as conn:
        n = repo.quarantine_rows(conn, "b1", "x.csv", [{"row_number": 3, "kind": "call", "reason": "bad",
                                                        "raw": "z" * 10_000}])
    assert n == 1
    with any_store.engine.connect() as conn:
        assert repo.count_quarantined(conn, "b1") == 1
        raw = conn.execute(text("SELECT raw FROM quarantine")).scalar_one()
    assert len(raw) == 4000


def test_indicators_signals_alerts_warnings_cases_centres(any_store):
    ind = Indicator(type=IndicatorType.PHONE, value="+66 81 234 5678", confidence=80, source="test",
                    tlp=TLP.GREEN, first_seen=T0, last_seen=T0)
    sig = Signal(detector="behaviour.mass_dialling", subject_type=SubjectType.PHONE, subject="+66812345678",
                 score=0.9, reasons=["behaviour.mass_dialling"], observed_at=T0)
    alert = Alert(role=AlertRole.SUSPECT, subject_type=SubjectType.PHONE, subject="+66812345678", score=0.8,
                  signal_ids=[sig.signal_id], created_at=T0, updated_at=T0)
    warn = Warning(recipient="+66812345679", body="Do not transfer money.", alert_id=alert.alert_id, created_at=T0)
    case = Case(title="Mule ring", victims=["+66812345679"], created_at=T0, updated_at=T0)
    centre = Centre(centre_id="TH", name="Thailand", level=CentreLevel.NATIONAL, country="TH")
    with any_store.begin() as conn:
        repo.upsert_indicator(conn, ind)
        repo.upsert_indicator(conn, ind.model_copy(update={"confidence": 90}))
        assert repo.insert_signals(conn, [sig]) == 1
        assert repo.insert_signals(conn, [sig]) == 0
        repo.insert_alerts(conn, [alert])
        repo.insert_warnings(conn, [warn])
        repo.save_case(conn, case)
        repo.save_centres(conn, [centre])
        assert repo.set_alert_status(conn, alert.alert_id, AlertStatus.ACKNOWLEDGED, centre_id="TH")
    with any_store.engine.connect() as conn:
        (got,) = repo.list_indicators(conn, type_="phone", value="+66812345678")
        assert got.confidence == 90 and got.first_seen == T0 and got.tlp is TLP.GREEN
        sightings = conn.execute(text("SELECT sightings FROM indicators")).scalar_one()
        assert sightings == 2
        assert repo.list_signals(conn, subject="+66812345678")[0].reasons == ["behaviour.mass_dialling"]
        stored_alert = repo.get_alert(conn, alert.alert_id)
        assert stored_alert is not None and stored_alert.status is AlertStatus.ACKNOWLEDGED
        assert stored_alert.centre_id == "TH"
        assert repo.get_warning(conn, warn.warning_id) == warn
        assert repo.get_case(conn, case.case_id) == case
        assert repo.list_centres(conn) == [centre]


def _chain_with_entries(store, n: int = 5) -> None:
    with store.begin() as conn:
        for i in range(n):
            audit.append(conn, "test", "thing.write", f"t{i}", {"i": i})


def test_audit_chain_intact(any_store):
    _chain_with_entries(any_store)
    with any_store.engine.connect() as conn:
        report = audit.verify_chain(conn)
    assert report.ok and report.entries == 5


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "forge_hash"])
def test_audit_chain_detects_tampering(any_store, tamper):
    _chain_with_entries(any_store)
    with any_store.begin() as conn:
        if tamper == "edit":
            conn.execute(text("UPDATE audit_log SET target = 'other' WHERE seq = 3"))
        elif tamper == "delete":
            conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
        elif tamper == "reorder":  # swap the content of two entries, hashes and all
            conn.execute(text("UPDATE audit_log SET seq = 100 WHERE seq = 2"))
            conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
            conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = 100"))
        else:  # replace an entry's hash with a forged one
            conn.execute(text("UPDATE audit_log SET hash = :h WHERE seq = 2"), {"h": "f" * 64})
    with any_store.engine.connect() as conn:
        report = audit.verify_chain(conn)
    assert not report.ok
    assert report.first_bad_seq == {"edit": 3, "delete": 2, "reorder": 2, "forge_hash": 2}[tamper]
