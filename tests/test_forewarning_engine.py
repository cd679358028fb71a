"""Victim-risk timelines and tiered interventions, streaming and batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from forewarn.centres.config import EXAMPLE_PATH, load_centres
from forewarn.centres.tasks import list_tasks
from forewarn.forewarning import evaluate, run
from forewarn.forewarning import tables as ft
from forewarn.forewarning.engine import ForewarningEngine, attach_to_bus
from forewarn.forewarning.examples import build_scenario, mule_account, scam_number, th_number, victim_script
from forewarn.forewarning.policy import Policy, PolicyError
from forewarn.forewarning.templates import TemplateError, Templates
from forewarn.model.events import CallRecord, Message, Payment, ProviderSignal, SubscriberRecord
from forewarn.model.indicators import Indicator, IndicatorType
from forewarn.model.records import Signal, SubjectType
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
SUSPECT = scam_number(1)


def flag_number(store: Store, number: str = SUSPECT, at: datetime = START - timedelta(days=1),
                scam_type: str | None = "impersonation.police") -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type=IndicatorType.PHONE, value=number, confidence=90, source="test",
                                              first_seen=at, last_seen=at, scam_type=scam_type))


def engine_for(store: Store, **kw) -> ForewarningEngine:  # type: ignore[no-untyped-def]
    eng = ForewarningEngine(store, **kw)
    eng.refresh_flags(force=True)
    return eng


def count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_long_call_from_flagged_number_warns_in_the_victims_language(store: Store) -> None:
    flag_number(store)
    eng = engine_for(store)
    victim = th_number(5)
    eng.process(SubscriberRecord(event_id="s", number=victim, activated_at=START - timedelta(days=900),
                                 country="TH", language="zh"))
    fired = eng.process(CallRecord(event_id="c", caller=SUSPECT, callee=victim, start=START, duration_s=400))
    assert [f.action for f in fired] == ["warning"]
    assert "call.long_with_suspect" in fired[0].reasons
    assert fired[0].trigger_at == START + timedelta(seconds=400)  # known when the call ended
    with store.engine.connect() as conn:
        (w,) = repo.list_warnings(conn)
        (alert,) = repo.list_alerts(conn)
        (msg,) = conn.execute(select(ft.fw_outbox)).all()
    assert w.language == "zh" and "核验码" in w.body and w.verification_code in w.body
    assert w.scam_type == "impersonation.police" and "公检法" in w.body
    assert alert.role.value == "victim" and alert.subject == victim
    assert msg.channel == "sms" and msg.recipient == victim and msg.idempotency_key == f"warning:{w.warning_id}"


def test_contact_without_engagement_does_not_warn(store: Store) -> None:
    flag_number(store)
    eng = engine_for(store)
    people = [th_number(100 + i) for i in range(4)]
    eng.process(CallRecord(event_id="a", caller=SUSPECT, callee=people[0], start=START, duration_s=0))
    eng.process(CallRecord(event_id="b", caller=SUSPECT, callee=people[1], start=START, duration_s=20))
    eng.process(Message(event_id="m", sender=SUSPECT, recipient=people[2], sent_at=START, text="parcel held"))
    # an everyday new payee after merely receiving an SMS is not a scam chain
    eng.process(Payment(event_id="p", payer_account="THBK1:ACC1", payer_phone=people[2], payee_account="THBK3:SHOP1",
                        amount=Decimal("300"), currency="THB", paid_at=START + timedelta(hours=2), new_payee=True))
    eng.process(CallRecord(event_id="n", caller=people[3], callee=people[0], start=START, duration_s=2000))
    assert eng.fired == []
    assert count(store, t.warnings_) == 0


def test_the_chain_climbs_every_tier_and_routes_to_the_local_centre(store: Store) -> None:
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
    flag_number(store)
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type=IndicatorType.BANK_ACCOUNT, value=mule_account(1), confidence=80,
                                              source="test", first_seen=START - timedelta(days=1)))
    eng = engine_for(store)
    events, _ = victim_script(1, th_number(7), SUSPECT, mule_account(1), START, region="TH-10-BKK")
    eng.process(Payment(event_id="everyday", payer_account="THBK1:ACC7", payer_phone=th_number(7),
                        payee_account="THBK3:SHOP7", amount=Decimal("80"), currency="THB",
                        paid_at=START - timedelta(days=2)))  # how the node knows the victim's bank
    actions = [f.action for ev in events for f in eng.process(ev)]
    assert actions == ["warning", "callback", "payment_hold", "visit"]
    with store.engine.connect() as conn:
        tasks = list_tasks(conn)
        case = repo.list_cases(conn)[0]
    assert {x["kind"] for x in tasks} == {"callback", "payment_hold", "visit"}
    assert {x["centre_id"] for x in tasks} == {"TH-10-BKK"}
    assert case.victims == [th_number(7)] and SUSPECT in case.suspects
    hold = next(x for x in tasks if x["kind"] == "payment_hold")
    assert hold["detail"]["bank"] == "THBK1"


def test_a_flag_learned_later_joins_the_timeline(store: Store) -> None:
    eng = engine_for(store)
    victim = th_number(9)
    eng.process(CallRecord(event_id="early", caller=SUSPECT, callee=victim, start=START, duration_s=700))
    assert eng.fired == []
    # a detector flags the number an hour later: the earlier long call now counts
    with store.begin() as conn:
        repo.insert_signals(conn, [Signal(detector="behaviour.test", subject_type=SubjectType.PHONE, subject=SUSPECT,
                                          score=0.95, reasons=["behaviour.mass_dialling"],
                                          observed_at=START + timedelta(hours=1))])
    eng.refresh_flags(force=True)
    assert [f.action for f in eng.fired] == ["warning"]
    eng.flush()
    with store.engine.connect() as conn:
        rows = conn.execute(select(ft.fw_timeline).where(ft.fw_timeline.c.subscriber == victim)).all()
    assert rows and all(r.retro for r in rows)


def test_flags_are_not_used_before_they_were_known(store: Store) -> None:
    flag_number(store, at=START + timedelta(days=10))  # learned long after the window
    eng = engine_for(store)
    eng.process(CallRecord(event_id="c", caller=SUSPECT, callee=th_number(3), start=START, duration_s=900))
    assert eng.fired == []
    hindsight = engine_for(store, respect_flag_time=False, load_state=False)
    hindsight.process(CallRecord(event_id="c", caller=SUSPECT, callee=th_number(3), start=START, duration_s=900))
    assert [f.action for f in hindsight.fired] == ["warning"]


def test_low_score_signals_do_not_flag(store: Store) -> None:
    with store.begin() as conn:
        repo.insert_signals(conn, [Signal(detector="d", subject_type=SubjectType.PHONE, subject=SUSPECT, score=0.3,
                                          observed_at=START - timedelta(hours=1))])
    eng = engine_for(store)
    eng.process(CallRecord(event_id="c", caller=SUSPECT, callee=th_number(3), start=START, duration_s=900))
    assert eng.fired == []


def _seed(store: Store, victims: int = 15, bystanders: int = 150):  # type: ignore[no-untyped-def]
    sc = build_scenario(victims=victims, bystanders=bystanders, start=START)
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
        repo.insert_events(conn, sc.events)
        for ind in sc.indicators:
            repo.upsert_indicator(conn, ind)
    return sc


def test_batch_run_is_idempotent_and_measured(any_store: Store) -> None:
    sc = _seed(any_store)
    first = run(any_store)
    assert first.fired["warning"] == len(sc.victims)
    again = run(any_store)
    assert again.fired == {}
    assert count(any_store, t.warnings_) == len(sc.victims)
    assert count(any_store, ft.fw_outbox) >= len(sc.victims)
    figures = evaluate(any_store, sc.victims)
    assert set(figures) == {"victims_warned_before_first_payment", "non_victims_warned", "median_seconds_to_warning"}
    assert figures["victims_warned_before_first_payment"] == 1.0
    assert figures["non_victims_warned"] == 0.0
    assert figures["median_seconds_to_warning"] is not None and figures["median_seconds_to_warning"] < 5


def test_evaluate_reads_the_simulators_truth_directory(store: Store, tmp_path: Path) -> None:
    sc = _seed(store, victims=6, bystanders=30)
    run(store)
    truth = tmp_path / "scenario" / "truth"
    truth.mkdir(parents=True)
    rows = list(sc.victims)
    late = {"number": th_number(9_999_999), "decisive_at": START, "first_payment_at": START,
            "first_contact_at": START}  # a victim nobody warned
    pq.write_table(pa.Table.from_pylist(rows + [late]), truth / "victims.parquet")
    figures = evaluate(store, tmp_path / "scenario")
    assert figures["victims_warned_before_first_payment"] == round(6 / 7, 4)


def test_victims_whose_money_moves_after_the_window_are_victims_without_a_verdict(store: Store) -> None:
    sc = _seed(store, victims=4, bystanders=20)
    run(store)
    hooked_late = dict(sc.victims[0], first_payment_at=None)  # warned, but no payment in the scenario
    unwarned_late = {"number": sc.bystanders[0], "decisive_at": START, "first_payment_at": None,
                     "first_contact_at": START}
    figures = evaluate(store, [hooked_late, *sc.victims[1:], unwarned_late])
    # neither counts for or against the before-payment share; neither is a non-victim
    assert figures["victims_warned_before_first_payment"] == 1.0
    assert figures["non_victims_warned"] == 0.0
    figures = evaluate(store, [hooked_late, unwarned_late])
    assert figures["victims_warned_before_first_payment"] is None


def test_streaming_through_the_ingest_bus(store: Store) -> None:
    from forewarn.ingest import bus
    from forewarn.ingest.validate import stored_from_model

    flag_number(store)
    eng = engine_for(store)
    unsubscribe = attach_to_bus(eng)
    try:
        events, _ = victim_script(2, th_number(11), SUSPECT, mule_account(2), START)
        bus.publish([stored_from_model(e) for e in events[:2]])
    finally:
        unsubscribe()
    assert [f.action for f in eng.fired] == ["warning"]
    assert eng.fired[0].latency_s < 1.0


def test_a_failed_intervention_writes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    flag_number(store)
    eng = engine_for(store)

    # a template edited carelessly: rendering refuses it, and the whole firing rolls back
    monkeypatch.setattr(eng.interventions, "templates", Templates(
        frames={"en": "{advice} Pay at fee-portal.com, code {code}, hotline {hotline}"},
        advice={"generic": {"en": "Careful."}}))
    with pytest.raises(TemplateError, match="link-like"):
        eng.process(CallRecord(event_id="c", caller=SUSPECT, callee=th_number(4), start=START, duration_s=900))
    assert count(store, t.alerts) == 0 and count(store, t.warnings_) == 0 and count(store, ft.fw_outbox) == 0


def test_payment_hold_goes_to_the_bank_webhook_when_configured(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"banks": {"THBK1": {"url": "http://127.0.0.1:9/hold", "secret_env": "HOLD_KEY"}}}))
    flag_number(store)
    eng = engine_for(store, policy=Policy.load(path))
    events, _ = victim_script(3, th_number(12), SUSPECT, mule_account(3), START)
    eng.process(Payment(event_id="earlier", payer_account="THBK1:ACC9", payer_phone=th_number(12),
                        payee_account="THBK3:SHOP9", amount=Decimal("100"), currency="THB",
                        paid_at=START - timedelta(days=3)))
    for ev in events:
        eng.process(ev)
    with store.engine.connect() as conn:
        hooks = conn.execute(select(ft.fw_outbox).where(ft.fw_outbox.c.channel == "webhook")).all()
    assert len(hooks) == 1 and hooks[0].recipient == "http://127.0.0.1:9/hold"
    assert hooks[0].payload["type"] == "payment_hold_request" and hooks[0].payload["bank"] == "THBK1"


def test_policy_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("tiers:\n  - {tier: 1, action: warning, at_score: 0.9, ack_minutes: 5}\n"
                   "  - {tier: 2, action: callback, at_score: 0.5, ack_minutes: 5}\n")
    with pytest.raises(PolicyError, match="rising at_score"):
        Policy.load(bad)
    bad.write_text("risk: [1, 2")
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.load(bad)


def test_timeline_route(api: TestClient, api_key, store: Store) -> None:  # type: ignore[no-untyped-def]
    flag_number(store)
    eng = engine_for(store)
    eng.process(CallRecord(event_id="c", caller=SUSPECT, callee=th_number(20), start=START, duration_s=900))
    eng.process(ProviderSignal(event_id="s", provider="telco", signal_type="sim_swap", subscriber=th_number(20),
                               observed_at=START + timedelta(hours=1)))
    eng.flush()
    resp = api.get(f"/v1/timelines/{th_number(20)}", headers=api_key("officer"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [e["reason"] for e in body["entries"]][-1] == "telco.sim_swap_after_contact"
    assert body["state"]["tiers_fired"]
    assert api.get(f"/v1/timelines/{th_number(20)}").status_code == 401
    assert api.get(f"/v1/timelines/{th_number(20)}", headers=api_key("telco")).status_code == 403
    assert api.get(f"/v1/timelines/{th_number(21)}", headers=api_key("analyst")).status_code == 404


def test_per_detector_thresholds(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"risk": {"detector_min_score": {"behaviour.noisy": 0.99}}}))
    with store.begin() as conn:
        repo.insert_signals(conn, [
            Signal(detector="behaviour.noisy", subject_type=SubjectType.PHONE, subject=scam_number(2), score=0.95,
                   observed_at=START - timedelta(hours=1)),
            Signal(detector="behaviour.sharp", subject_type=SubjectType.PHONE, subject=scam_number(3), score=0.95,
                   observed_at=START - timedelta(hours=1))])
    eng = engine_for(store, policy=Policy.load(path))
    eng.process(CallRecord(event_id="a", caller=scam_number(2), callee=th_number(30), start=START, duration_s=900))
    eng.process(CallRecord(event_id="b", caller=scam_number(3), callee=th_number(31), start=START, duration_s=900))
    assert [f.subscriber for f in eng.fired] == [th_number(31)]


def test_wangiri_callbacks_are_nuisance_not_a_scam_chain(store: Store) -> None:
    flag_number(store, scam_type="wangiri")
    eng = engine_for(store)
    eng.process(CallRecord(event_id="ring", caller=SUSPECT, callee=th_number(40), start=START, duration_s=0))
    eng.process(CallRecord(event_id="back", caller=th_number(40), callee=SUSPECT, start=START + timedelta(minutes=9),
                           duration_s=1200))
    assert eng.fired == []
    eng.flush()
    with store.engine.connect() as conn:
        reasons = {r.reason for r in conn.execute(select(ft.fw_timeline))}
    assert reasons == {"contact.nuisance"}


def test_a_mule_passing_money_on_is_not_a_victim(store: Store) -> None:
    with store.begin() as conn:
        for i in (1, 2):
            repo.upsert_indicator(conn, Indicator(type=IndicatorType.BANK_ACCOUNT, value=mule_account(i), confidence=80,
                                                  source="test", first_seen=START - timedelta(days=1)))
    eng = engine_for(store)
    eng.process(Payment(event_id="layer", payer_account=mule_account(1), payer_phone=th_number(50),
                        payee_account=mule_account(2), amount=Decimal("40000"), currency="THB", paid_at=START))
    assert eng.fired == [] and th_number(50) not in eng.timelines
