"""Firewall decisions: reputation, policy rules, live counters, screening, labels in the
recipient's language, TTLs, and allow-lists winning over every block or mark rule."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forewarn.behaviour.live import LiveCounters
from forewarn.firewall.engine import DecisionInputError
from forewarn.firewall.labels import LABEL_KEYS, LABELS
from forewarn.firewall.policy import PolicyError, load_policy
from forewarn.firewall.reasons import documented
from forewarn.firewall.service import FirewallService
from forewarn.model.events import SubscriberRecord
from forewarn.model.indicators import Indicator, utcnow
from forewarn.reputation import allowlist, appeals
from forewarn.store import repository as repo

LISTED = "+8613800138000"  # a trusted indicator, confidence 95
GREY = "+8613900139000"  # confidence 60: marks
CLEAN = "+8613100131000"
CALLEE = "+8613700137000"
OTHER_CALLEE = "+8613700137001"
GOV = "+8610012301234"
EVIL_URL = "http://evil-parcel.example.com/pay"


@dataclass
class FakeScreen:
    score: float
    label: str = "scam"
    category: str = "parcel"
    lang: str = "en"
    cues: tuple[str, ...] = ()
    indicators: tuple[dict[str, str], ...] = ()


class FakeScreener:
    def __init__(self, score: float) -> None:
        self.score = score

    def screen_one(self, text: str, lang: str | None = None, channel: str = "sms") -> FakeScreen:
        return FakeScreen(self.score if "urgent" in text else 0.05)


def _service(store: Any, country: str = "CN", **kw: Any) -> FirewallService:
    kw.setdefault("counters", LiveCounters())
    kw.setdefault("screener", None)
    return FirewallService(store, load_policy(country), start_refresher=False, **kw)


@pytest.fixture
def seeded(store: Any) -> Any:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="behaviour.det",
                                              scam_type="impersonation_police"))
        repo.upsert_indicator(conn, Indicator(type="phone", value=GREY, confidence=60, source="behaviour.det"))
        repo.upsert_indicator(conn, Indicator(type="url", value=EVIL_URL, confidence=95, source="screening.det"))
        repo.upsert_indicator(conn, Indicator(type="sender_id", value="BANKX", confidence=95, source="det"))
    return store


def test_listed_blocks_grey_marks_clean_allows(seeded: Any) -> None:
    fw = _service(seeded).firewall
    blocked = fw.decide_call(LISTED, CALLEE)
    assert (blocked.action, blocked.label) == ("block", "疑似诈骗")
    assert blocked.reasons[0] == "reputation.listed" and blocked.score >= 80
    assert 1 <= blocked.ttl_s <= 900
    marked = fw.decide_call(GREY, CALLEE)
    assert marked.action == "mark" and marked.label == "疑似诈骗"
    clean = fw.decide_call(CLEAN, CALLEE)
    assert (clean.action, clean.label, clean.reasons) == ("allow", None, ())


def test_known_bad_number_never_consults_the_counters(seeded: Any) -> None:
    class Exploding(LiveCounters):
        def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
            raise AssertionError("counters consulted for a number already known to be bad")

    fw = _service(seeded, counters=Exploding()).firewall
    assert fw.decide_call(LISTED, CALLEE, observe=False).action == "block"


def test_policy_rules_home_cli_international_roaming_and_claimed_country(seeded: Any) -> None:
    fw = _service(seeded).firewall
    spoof = fw.decide_call(CLEAN, CALLEE, "international")
    assert spoof.action == "block" and "policy.home_cli_over_international" in spoof.reasons
    intl = fw.decide_call("+66812345678", CALLEE, "international")
    assert (intl.action, intl.label) == ("mark", "国际来电")
    assert intl.reasons == ("policy.international_call",)
    roaming = fw.decide_call("+66812345678", CALLEE, "roaming")
    assert roaming.action == "mark" and "policy.roaming_foreign_cli" in roaming.reasons
    assert fw.decide_call(CLEAN, CALLEE, "roaming").action == "allow"
    claimed = fw.decide_call(CLEAN, CALLEE, "domestic", claimed_country="TH")
    assert claimed.action == "mark" and claimed.label == "疑似伪造号码"
    invalid = fw.decide_call("12", CALLEE)
    assert invalid.action == "mark" and invalid.reasons == ("caller.invalid",)


def test_country_policies_differ(store: Any) -> None:
    mark_only = _service(store, country="ID").firewall
    decision = mark_only.decide_call("+6281234567890", "+6281234567891", "international")
    assert decision.action == "mark" and decision.label == "Kemungkinan nomor palsu"


def test_labels_in_the_recipients_language(seeded: Any) -> None:
    with seeded.begin() as conn:
        repo.insert_events(conn, [SubscriberRecord(event_id="sub-1", number=OTHER_CALLEE, activated_at=utcnow(),
                                                   country="CN", language="vi")])
    fw = _service(seeded).firewall
    assert fw.decide_call(LISTED, OTHER_CALLEE).label == "Nghi lừa đảo"  # subscriber record
    expected = {"+66812345678": "สงสัยมิจฉาชีพ", "+84912345678": "Nghi lừa đảo", "+6281234567890": "Diduga penipuan",
                "+60123456789": "Disyaki penipuan", "+639171234567": "Hinihinalang panloloko",
                "+959123456789": LABELS["my"]["suspected_fraud"], "+85512345678": LABELS["km"]["suspected_fraud"],
                "+8562012345678": LABELS["lo"]["suspected_fraud"], "+6581234567": "Suspected fraud"}
    for callee, text in expected.items():
        assert fw.decide_call(LISTED, callee).label == text, callee
    for lang in ("zh", "en", "th", "vi", "id", "ms", "tl", "my", "km", "lo"):
        assert set(LABELS[lang]) == set(LABEL_KEYS)


def test_live_counters_mark_a_fresh_mass_dialler(store: Any) -> None:
    fw = _service(store).firewall
    caller = "+8613512345678"
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    decisions = [fw.decide_call(caller, f"+86137{i:08d}", time=t0 + timedelta(seconds=5 * i)) for i in range(60)]
    assert decisions[0].action == "allow"
    assert decisions[-1].action == "mark"
    assert "behaviour.mass_dialling" in decisions[-1].reasons
    assert all(d.action != "block" for d in decisions)  # behaviour alone never blocks by default


def test_counters_failure_degrades_with_a_reason(store: Any) -> None:
    class Down(LiveCounters):
        def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
            raise ConnectionError("redis down")

    fw = _service(store, counters=Down()).firewall
    decision = fw.decide_call(CLEAN, CALLEE)
    assert decision.action == "allow" and "counters.unavailable" in decision.reasons


def test_sms_screening_and_listed_url(seeded: Any) -> None:
    fw = _service(seeded, screener=FakeScreener(0.9)).firewall
    assert fw.decide_sms("+8613600136000", CALLEE, "hello, dinner at 7?").action == "allow"
    suspicious = fw.decide_sms("+8613600136000", CALLEE, "urgent: your parcel is held")
    assert suspicious.action == "mark" and "screening.suspicious" in suspicious.reasons
    url = fw.decide_sms("+8613600136000", CALLEE, f"pay the fee at {EVIL_URL} today")
    assert url.action == "block" and "reputation.url_listed" in url.reasons
    assert fw.decide_sms("BANKX", CALLEE, "hi").action == "block"


def test_sms_without_screening_says_so_and_still_finds_listed_urls(seeded: Any) -> None:
    fw = _service(seeded, screener=None).firewall
    decision = fw.decide_sms("+8613600136000", CALLEE, f"visit {EVIL_URL}")
    assert decision.action == "block"
    assert "screening.unavailable" in decision.reasons


def test_unregistered_sender_ids_are_marked_where_policy_says(store: Any) -> None:
    sg = _service(store, country="SG").firewall
    marked = sg.decide_sms("DHL-PARCEL", "+6581234567", "your parcel")
    assert marked.action == "mark" and marked.label == "Unverified sender"
    cn = _service(store).firewall
    assert cn.decide_sms("DHL-PARCEL", CALLEE, "your parcel").action == "allow"


def test_bad_input_is_a_clear_error(store: Any) -> None:
    fw = _service(store).firewall
    with pytest.raises(DecisionInputError, match="callee"):
        fw.decide_call(CLEAN, "not-a-number")
    with pytest.raises(DecisionInputError, match="ingress"):
        fw.decide_call(CLEAN, CALLEE, "satellite")
    with pytest.raises(DecisionInputError, match="time"):
        fw.decide_call(CLEAN, CALLEE, time="yesterday")
    with pytest.raises(DecisionInputError, match="recipient"):
        fw.decide_sms(CLEAN, "x", "hi")


def test_every_emitted_reason_is_documented(seeded: Any) -> None:
    fw = _service(seeded, screener=FakeScreener(0.99)).firewall
    decisions = [fw.decide_call(c, CALLEE, ing, cc) for c in (LISTED, GREY, CLEAN, "+66812345678", "1")
                 for ing in ("domestic", "international", "roaming") for cc in (None, "TH")]
    decisions += [fw.decide_sms(s, CALLEE, f"urgent {EVIL_URL}") for s in ("BANKX", CLEAN, "??")]
    codes = {r for d in decisions for r in d.reasons}
    assert codes and all(documented(code) for code in codes), [c for c in codes if not documented(c)]


def test_policy_errors_name_the_key(tmp_path: Any) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("thresholds: {mark: 90, block: 50}\n")
    with pytest.raises(PolicyError, match="thresholds.block"):
        load_policy("TH", bad)
    bad.write_text("thresholdz: {}\n")
    with pytest.raises(PolicyError, match="thresholdz"):
        load_policy("TH", bad)
    with pytest.raises(PolicyError, match="country"):
        load_policy("XX")


# --- allow-lists always win: one test per conflict ---------------------------------------------

def _allow(store: Any, kind: str, value: str, owner: str | None = None) -> None:
    with store.begin() as conn:
        allowlist.add_entry(conn, kind, value, actor="test", owner=owner, default_region="CN")


CONFLICTS = {
    "emergency number listed as an indicator": ("emergency", LISTED, None, "call", (LISTED, CALLEE, "domestic")),
    "government number over an international trunk": ("government", CLEAN, None, "call",
                                                       (CLEAN, CALLEE, "international")),
    "government number with a claimed-country mismatch": ("government", CLEAN, None, "call",
                                                          (CLEAN, CALLEE, "domestic", "TH")),
    "emergency short code that is no E.164 number": ("emergency", "110", None, "call", ("110", CALLEE, "domestic")),
    "operator-vouched number listed and over roaming": ("number", "+66812345678", None, "call",
                                                        ("+66812345678", CALLEE, "roaming")),
    "personal allow-list vs a listed caller": ("personal", LISTED, CALLEE, "call", (LISTED, CALLEE, "domestic")),
    "registered sender ID listed, with a listed URL in the text": ("sender_id", "BANKX", None, "sms",
                                                                    ("BANKX", CALLEE, f"urgent {EVIL_URL}")),
    "personal allow-list vs a listed SMS sender": ("personal", LISTED, CALLEE, "sms", (LISTED, CALLEE, "hi")),
}


@pytest.mark.parametrize("case", list(CONFLICTS), ids=list(CONFLICTS))
def test_allow_list_wins_over_block_rules(seeded: Any, case: str) -> None:
    kind, value, owner, channel, args = CONFLICTS[case]
    before = _service(seeded, screener=FakeScreener(0.99)).firewall
    decide = before.decide_call if channel == "call" else before.decide_sms
    assert decide(*args).action in ("block", "mark"), "the case must conflict without the allow-list"
    _allow(seeded, kind, value, owner)
    fw = _service(seeded, screener=FakeScreener(0.99)).firewall
    decide = fw.decide_call if channel == "call" else fw.decide_sms
    decision = decide(*args)
    assert decision.action == "allow" and decision.label is None
    assert decision.reasons[0] == f"allowlist.{kind}"
    assert any(r.startswith("overridden:") for r in decision.reasons), "the overridden rule stays visible"


def test_personal_allow_list_is_only_for_its_owner(seeded: Any) -> None:
    _allow(seeded, "personal", LISTED, CALLEE)
    fw = _service(seeded).firewall
    assert fw.decide_call(LISTED, CALLEE).action == "allow"
    assert fw.decide_call(LISTED, OTHER_CALLEE).action == "block"


def test_allow_list_wins_over_live_counters_reports_and_analyst_verdicts(seeded: Any) -> None:
    caller = "+8613512345678"
    with seeded.begin() as conn:
        appeals.record_verdict(conn, "phone", caller, "scam", "confirmed by officer", actor="analyst:a")
    _allow(seeded, "government", caller)
    fw = _service(seeded).firewall
    t0 = time.time()
    decisions = [fw.decide_call(caller, f"+86137{i:08d}", time=t0 + i) for i in range(60)]
    assert all(d.action == "allow" and d.reasons[0] == "allowlist.government" for d in decisions)
    assert "overridden:reputation.listed" in decisions[-1].reasons


def test_allow_list_entries_are_validated(store: Any) -> None:
    with store.begin() as conn, pytest.raises(allowlist.AllowListError, match="owner"):
        allowlist.add_entry(conn, "personal", LISTED, actor="t")
    with store.begin() as conn, pytest.raises(allowlist.AllowListError, match="sender ID has letters"):
        allowlist.add_entry(conn, "sender_id", "+8613800138000", actor="t")
    with store.begin() as conn, pytest.raises(allowlist.AllowListError, match="kind"):
        allowlist.add_entry(conn, "vip", LISTED, actor="t")
