"""Evidence strength: being reached by scammers is not a live attempt; engaging with one is.

Scammers ring and text nearly everyone, so contacts alone — however many, from however many
flagged numbers — get the light ``mark`` step (no message, no task), and a personal warning needs
engagement: a long call, a call back or a message to a suspect, a visit to a flagged link, or a
routine event (new payee, SIM swap, remote-access app) that follows such engagement.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from forewarn.forewarning import tables as ft
from forewarn.forewarning.engine import ForewarningEngine
from forewarn.forewarning.examples import scam_number, th_number
from forewarn.forewarning.policy import Policy, PolicyError
from forewarn.model.events import CallRecord, Message, Payment, ProviderSignal
from forewarn.model.indicators import Indicator, IndicatorType
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
SCAMMERS = [scam_number(i) for i in range(10)]


def flag_all(store: Store, numbers: list[str] = SCAMMERS, scam_type: str = "impersonation.police") -> None:
    known = START - timedelta(days=1)
    with store.begin() as conn:
        for number in numbers:
            repo.upsert_indicator(conn, Indicator(type=IndicatorType.PHONE, value=number, confidence=90,
                                                  source="test", first_seen=known, last_seen=known,
                                                  scam_type=scam_type))


def engine_for(store: Store, **kw) -> ForewarningEngine:  # type: ignore[no-untyped-def]
    eng = ForewarningEngine(store, **kw)
    eng.refresh_flags(force=True)
    return eng


def count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def bombard(eng: ForewarningEngine, person: str) -> None:
    """Ten different scam numbers ring or text one person over an afternoon; nobody engages."""
    for i, number in enumerate(SCAMMERS):
        at = START + timedelta(minutes=20 * i)
        if i % 3 == 0:
            eng.process(Message(event_id=f"m{i}", sender=number, recipient=person, sent_at=at, text="parcel held"))
        else:
            eng.process(CallRecord(event_id=f"c{i}", caller=number, callee=person, start=at,
                                   duration_s=0.0 if i % 3 == 1 else 25.0))


def state_of(store: Store, person: str) -> dict[str, object]:
    with store.engine.connect() as conn:
        row = conn.execute(select(ft.fw_risk_state).where(ft.fw_risk_state.c.subscriber == person)).mappings().one()
    return dict(row)


def test_contacts_alone_get_a_mark_not_a_warning_however_many(store: Store) -> None:
    flag_all(store)
    eng = engine_for(store)
    person = th_number(10)
    bombard(eng, person)
    assert eng.timelines[person].score(START + timedelta(hours=4), eng.policy.risk) >= 0.5
    assert [f.action for f in eng.fired] == ["mark"]
    assert count(store, t.warnings_) == 0 and count(store, t.alerts) == 0 and count(store, ft.fw_outbox) == 0
    assert state_of(store, person)["tiers_fired"] == [0]
    with store.engine.connect() as conn:
        (entry,) = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "forewarning.mark")).mappings().all()
    assert entry["target"] == person and set(entry["detail"]["suspects"]) <= set(SCAMMERS)


def test_engaging_after_a_mark_warns_at_once(store: Store) -> None:
    flag_all(store)
    eng = engine_for(store)
    person = th_number(11)
    bombard(eng, person)
    fired = eng.process(CallRecord(event_id="talk", caller=SCAMMERS[4], callee=person,
                                   start=START + timedelta(hours=5), duration_s=420))
    # the contacts still count towards the score: here the warning comes with an officer's call-back
    assert [f.action for f in fired] == ["warning", "callback"]
    assert "call.long_with_suspect" in fired[0].reasons
    assert count(store, t.warnings_) == 1
    assert state_of(store, person)["tiers_fired"] == [0, 1, 2]


def test_a_call_back_without_a_conversation_is_curiosity(store: Store) -> None:
    flag_all(store)
    eng = engine_for(store)
    curious, talker = th_number(12), th_number(13)
    for person, seconds in ((curious, 0.0), (curious, 8.0), (talker, 240.0)):
        eng.process(CallRecord(event_id=f"back-{person[1:]}-{seconds}", caller=person, callee=SCAMMERS[1],
                               start=START, duration_s=seconds))
    for person in (curious, talker):  # an everyday new payee an hour later
        eng.process(Payment(event_id=f"p-{person[1:]}", payer_account=f"THBK1:{person[-6:]}", payer_phone=person,
                            payee_account="THBK3:SHOP1", amount=Decimal("300"), currency="THB",
                            paid_at=START + timedelta(hours=1), new_payee=True))
    reasons = {p: {e.reason for e in eng.timelines[p].entries} for p in (curious, talker)}
    assert reasons[curious] == {"contact.called_back_no_conversation", "bank.new_payee"}
    assert reasons[talker] == {"contact.victim_called_suspect", "bank.new_payee_after_contact"}
    assert [f.subscriber for f in eng.fired if f.action == "warning"] == [talker]


def test_routine_events_after_mere_contact_are_coincidence(store: Store) -> None:
    flag_all(store)
    eng = engine_for(store)
    rung, hooked = th_number(14), th_number(15)
    eng.process(CallRecord(event_id="short", caller=SCAMMERS[2], callee=rung, start=START, duration_s=40))
    eng.process(CallRecord(event_id="long", caller=SCAMMERS[2], callee=hooked, start=START, duration_s=400))
    for person in (rung, hooked):
        for kind in ("sim_swap", "remote_access_app_installed"):
            eng.process(ProviderSignal(event_id=f"{kind}-{person[1:]}", provider="telco", signal_type=kind,
                                       subscriber=person, observed_at=START + timedelta(hours=2)))
    rung_reasons = {e.reason for e in eng.timelines[rung].entries}
    assert rung_reasons == {"contact.flagged_call", "telco.sim_swap", "device.remote_access_app"}
    assert {"telco.sim_swap_after_contact", "device.remote_access_app_after_contact"} <= {
        e.reason for e in eng.timelines[hooked].entries}
    assert rung not in {f.subscriber for f in eng.fired}


def test_a_message_to_a_suspect_is_engagement_live_and_when_flagged_later(store: Store) -> None:
    flag_all(store, SCAMMERS[:1])
    eng = engine_for(store)
    replier, early = th_number(16), th_number(17)
    eng.process(Message(event_id="reply", sender=replier, recipient=SCAMMERS[0], sent_at=START, text="how do I join?"))
    assert {e.reason for e in eng.timelines[replier].entries} == {"contact.victim_messaged_suspect"}
    # a message to a number flagged only afterwards joins the timeline when the flag arrives
    eng.process(Message(event_id="early", sender=early, recipient=SCAMMERS[5], sent_at=START, text="yes, interested"))
    assert early not in eng.timelines
    from forewarn.forewarning.suspects import PHONE, Flag

    eng.observe_flag(Flag(PHONE, SCAMMERS[5], START + timedelta(minutes=30), 0.9, "job.task_rebate", "test"))
    assert {(e.reason, e.retro) for e in eng.timelines[early].entries} == {("contact.victim_messaged_suspect", True)}


def test_wangiri_flag_from_the_behaviour_detector_is_nuisance(store: Store) -> None:
    """The behaviour capability names its detectors ``behaviour.<rule>``; the policy matches that name."""
    from forewarn.model.records import Signal, SubjectType

    with store.begin() as conn:
        repo.insert_signals(conn, [Signal(detector="behaviour.wangiri", subject_type=SubjectType.PHONE,
                                          subject=SCAMMERS[0], score=0.85, observed_at=START - timedelta(hours=1))])
    eng = engine_for(store)
    eng.process(CallRecord(event_id="back", caller=th_number(18), callee=SCAMMERS[0], start=START, duration_s=1500))
    assert {e.reason for e in eng.timelines[th_number(18)].entries} == {"contact.nuisance"}
    assert eng.fired == []


def test_policy_checks_tiers_and_engagement_reasons(tmp_path: Path) -> None:
    base = Policy.load()
    tiers = [tier.model_dump() for tier in base.tiers]
    tiers[1].pop("ack_minutes")
    bad_tier = tmp_path / "tier.yaml"
    bad_tier.write_text(yaml.safe_dump({"tiers": tiers}))
    with pytest.raises(PolicyError, match="needs ack_minutes"):
        Policy.load(bad_tier)
    bad_reason = tmp_path / "reason.yaml"
    bad_reason.write_text(yaml.safe_dump({"risk": {"engagement_reasons": ["call.long_with_suspect", "made.up"]}}))
    with pytest.raises(PolicyError, match="made.up"):
        Policy.load(bad_reason)
    # a policy without the mark step simply leaves contacts-only risk alone
    no_mark = tmp_path / "nomark.yaml"
    no_mark.write_text(yaml.safe_dump({"tiers": [x for x in (tier.model_dump() for tier in base.tiers)
                                                 if x["action"] != "mark"]}))
    assert [x.action for x in Policy.load(no_mark).tiers][0] == "warning"
    assert json.dumps(sorted(base.risk.engagement_reasons))  # the default list is plain strings


def test_without_a_mark_step_contacts_alone_fire_nothing(store: Store, tmp_path: Path) -> None:
    flag_all(store)
    no_mark = tmp_path / "nomark.yaml"
    no_mark.write_text(yaml.safe_dump({"tiers": [x for x in (tier.model_dump() for tier in Policy.load().tiers)
                                                 if x["action"] != "mark"]}))
    eng = engine_for(store, policy=Policy.load(no_mark))
    bombard(eng, th_number(19))
    assert eng.fired == []
