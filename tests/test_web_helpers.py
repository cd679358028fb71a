"""A realistic node state for the page, publishing and browser tests (our own written examples,
not collected data): a Thai node with its centre hierarchy, scam numbers in neighbouring countries
calling Thai subscribers, victims who were warned (through forewarning's engine when it is
installed, so warnings are really signed), signals with scam types and cues, citizen reports,
suspect and victim alerts, cases with outcomes, and indicators under every TLP marking.

Imported by the other ``test_web_*`` / ``test_publishing_*`` modules; it has no tests itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import phonenumbers

from forewarn.model.events import CallRecord, CitizenReport
from forewarn.model.indicators import TLP, Indicator, IndicatorType, utcnow
from forewarn.model.records import (
    Alert,
    AlertRole,
    Case,
    CaseStatus,
    Centre,
    CentreLevel,
    Signal,
    SubjectType,
    Warning,
)
from forewarn.store import Store
from forewarn.store import repository as repo


def number(region: str, i: int) -> str:
    """The ``i``-th valid mobile number of ``region`` near the library's example number."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    base = example.national_number
    step = 0
    while True:
        candidate = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=base + 7919 * i + step)
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
        step += 1


@dataclass
class Seeded:
    now: datetime
    listed_scam: str  # TLP:GREEN, confidence 90 -> "scam"
    listed_suspicious: str  # TLP:AMBER, confidence 60 -> "suspicious"
    red_only: str  # listed only under TLP:RED -> never revealed
    strict_account: str  # bank account under AMBER+STRICT -> never revealed
    clean: str
    scam_url: str
    open_alert_ids: list[str] = field(default_factory=list)
    victims: list[str] = field(default_factory=list)
    warning_codes: list[str] = field(default_factory=list)
    signed_warnings: bool = False
    case_ids: list[str] = field(default_factory=list)
    appeal_id: str | None = None  # set when the reputation capability (appeals) is installed


CENTRES = [
    Centre(centre_id="TH", name="Thailand National Anti-Fraud Centre", level=CentreLevel.NATIONAL, country="TH",
           languages=["th", "en"]),
    Centre(centre_id="TH-10", name="Bangkok Anti-Fraud Centre", level=CentreLevel.PROVINCIAL, parent_id="TH",
           country="TH", regions=["TH-10"], languages=["th"]),
    Centre(centre_id="TH-50", name="Chiang Mai Anti-Fraud Centre", level=CentreLevel.PROVINCIAL, parent_id="TH",
           country="TH", regions=["TH-50"], languages=["th"]),
]
# (scam type, cue codes as the screener emits them)
SCAM_TYPES = [
    ("impersonation.police", ["authority.police", "crime.accusation", "money.transfer", "secrecy", "urgency"]),
    ("parcel.customs_fee", ["authority.courier", "payment.fee", "link.action"]),
    ("investment.pig_butchering", ["investment", "romance"]),
    ("job.task_rebate", ["job.task", "money.transfer"]),
]


def _forewarning_scenario(store: Store, start: datetime, seeded: Seeded) -> bool:
    """Victims warned by forewarning's own engine (signed warnings, tasks, cases); False if absent."""
    try:
        from forewarn.forewarning import run
        from forewarn.forewarning.examples import build_scenario
    except ImportError:
        return False
    scenario = build_scenario(victims=6, bystanders=30, start=start, seed=11, suspects=3)
    with store.begin() as conn:
        repo.insert_events(conn, scenario.events)
        for indicator in scenario.indicators:
            repo.upsert_indicator(conn, indicator)
    run(store)
    seeded.victims += [str(v["number"]) for v in scenario.victims]
    with store.engine.connect() as conn:
        warnings = repo.list_warnings(conn, limit=200)
    seeded.warning_codes += [w.verification_code for w in warnings if w.verification_code]
    return bool(seeded.warning_codes)


def seed_node(store: Store, *, now: datetime | None = None, seed: int = 5) -> Seeded:
    rng = random.Random(seed)
    now = (now or utcnow()).replace(microsecond=0)
    seeded = Seeded(now=now, listed_scam=number("TH", 101), listed_suspicious=number("TH", 102),
                    red_only=number("TH", 103), strict_account="KBANK:1234567890", clean=number("TH", 104),
                    scam_url="http://thai-post-redelivery.top/track")
    with store.begin() as conn:
        try:
            from forewarn.centres.config import load_centres

            load_centres(conn, Path(__import__("forewarn.centres", fromlist=["x"]).__file__).parent / "example-centres.yaml")
        except ImportError:
            repo.save_centres(conn, CENTRES)
    seeded.signed_warnings = _forewarning_scenario(store, now - timedelta(days=2), seeded)

    scammers = {"KH": [number("KH", i) for i in range(4)], "MM": [number("MM", i) for i in range(3)],
                "LA": [number("LA", i) for i in range(2)]}
    thai = [number("TH", 500 + i) for i in range(40)]
    abroad = {"VN": [number("VN", i) for i in range(5)], "MY": [number("MY", i) for i in range(5)]}
    events: list[CallRecord | CitizenReport] = []
    for country, numbers in scammers.items():
        for s_i, scammer in enumerate(numbers):
            for k in range(12 + 4 * s_i):
                at = now - timedelta(days=rng.uniform(0.1, 25))
                events.append(CallRecord(event_id=f"seed-{country}-{s_i}-{k}", caller=scammer, callee=rng.choice(thai),
                                         start=at, duration_s=rng.choice([0, 0, 8, 25, 400, 900]), ingress="international"))
    for country, numbers in abroad.items():  # ordinary cross-border life, both ways
        for k in range(40):
            at = now - timedelta(days=rng.uniform(0.1, 25))
            a, b = rng.choice(thai), rng.choice(numbers)
            caller, callee = (a, b) if k % 2 else (b, a)
            events.append(CallRecord(event_id=f"seed-{country}-n{k}", caller=caller, callee=callee, start=at,
                                     duration_s=rng.uniform(30, 1200)))
    for k in range(60):
        a, b = rng.sample(thai, 2)
        events.append(CallRecord(event_id=f"seed-TH-{k}", caller=a, callee=b, start=now - timedelta(days=rng.uniform(0, 25)),
                                 duration_s=rng.uniform(10, 600)))
    for k in range(14):  # citizen reports this week and last
        scam_type, _ = SCAM_TYPES[k % 3]
        reported = now - timedelta(days=rng.uniform(0, 13.5))
        events.append(CitizenReport(event_id=f"seed-report-{k}", reporter=rng.choice(thai), indicator_type="phone",
                                    indicator_value=rng.choice(scammers["KH"] + scammers["MM"]), scam_type=scam_type,
                                    reported_at=reported, lang="th"))

    indicators = [
        Indicator(type=IndicatorType.PHONE, value=seeded.listed_scam, confidence=90, source="police-th",
                  tlp=TLP.GREEN, scam_type="impersonation.police", last_seen=now, first_seen=now - timedelta(days=3)),
        Indicator(type=IndicatorType.PHONE, value=seeded.listed_suspicious, confidence=60, source="telco-a",
                  tlp=TLP.AMBER, scam_type="parcel.customs_fee"),
        Indicator(type=IndicatorType.PHONE, value=seeded.red_only, confidence=99, source="case-file-77",
                  tlp=TLP.RED, scam_type="impersonation.police"),
        Indicator(type=IndicatorType.BANK_ACCOUNT, value=seeded.strict_account, confidence=95, source="bank-b",
                  tlp=TLP.AMBER_STRICT),
        Indicator(type=IndicatorType.URL, value=seeded.scam_url, confidence=85, source="screening", tlp=TLP.CLEAR,
                  scam_type="parcel.customs_fee"),
    ] + [Indicator(type=IndicatorType.PHONE, value=s, confidence=80, source="behaviour", tlp=TLP.AMBER,
                   scam_type="impersonation.police") for s in scammers["KH"][:2]]

    signals: list[Signal] = []
    for week, counts in ((0, (9, 6, 3, 2)), (1, (5, 6, 1, 0))):
        for (scam_type, cues), n in zip(SCAM_TYPES, counts, strict=True):
            for k in range(n):
                subject = number("TH", 900 + 40 * SCAM_TYPES.index((scam_type, cues)) + k + 13 * week)
                signals.append(Signal(detector="screening.sms", subject_type=SubjectType.PHONE, subject=subject,
                                      score=round(rng.uniform(0.7, 0.99), 2), scam_type=scam_type,
                                      reasons=[f"screening.cue.{c}" for c in rng.sample(cues, min(3, len(cues)))],
                                      observed_at=now - timedelta(days=7 * week + rng.uniform(0.1, 6.8))))

    alerts = [Alert(role=AlertRole.SUSPECT, subject_type=SubjectType.PHONE, subject=s, score=round(0.95 - 0.05 * i, 2),
                    reasons=["behaviour.mass_dialling", "behaviour.fresh_sim", "reputation.listed"][: 1 + i % 3],
                    centre_id="TH", scam_type="impersonation.police", created_at=now - timedelta(hours=2 + i))
              for i, s in enumerate(scammers["KH"] + scammers["MM"])]
    alerts += [Alert(role=AlertRole.VICTIM, subject_type=SubjectType.PHONE, subject=v, score=0.7 + 0.04 * i,
                     reasons=["forewarning.long_call_from_suspect", "forewarning.remote_app"], centre_id="TH-10",
                     scam_type="impersonation.police", created_at=now - timedelta(hours=1 + i))
               for i, v in enumerate(thai[:4])]
    seeded.open_alert_ids = [a.alert_id for a in alerts]
    seeded.victims += thai[:4]

    cases = []
    for i in range(16):  # 7 in the last 30 days, 9 in the 30 before: "cases filed" should fall
        created = now - timedelta(days=rng.uniform(1, 29) if i < 7 else rng.uniform(31, 59))
        solved = i % 3 == 0
        cases.append(Case(title=f"Call-centre ring {i + 1}", status=CaseStatus.SOLVED if solved else CaseStatus.INVESTIGATING,
                          centre_id="TH-10" if i % 2 else "TH-50", scam_type=SCAM_TYPES[i % 4][0],
                          victims=[thai[i]], suspects=[scammers["KH"][i % 4]], alert_ids=[alerts[i % len(alerts)].alert_id],
                          indicators=[f"phone:{scammers['KH'][i % 4]}"], loss_amount=float(20_000 + 5_000 * i),
                          recovered_amount=float(8_000 * (i % 3)), suspects_arrested=2 if solved else 0,
                          created_at=created, updated_at=created + timedelta(hours=20)))
    seeded.case_ids = [c.case_id for c in cases]

    with store.begin() as conn:
        repo.insert_events(conn, events)
        for indicator in indicators:
            repo.upsert_indicator(conn, indicator)
        repo.insert_signals(conn, signals)
        repo.insert_alerts(conn, alerts)
        for item in cases:
            repo.save_case(conn, item)
        if not seeded.signed_warnings:  # without forewarning: warnings as the core record holds them
            warnings = [Warning(recipient=v, language="th", scam_type="impersonation.police",
                                body="Forewarn: a caller may be pretending to be the police. Do not transfer money.",
                                verification_code=f"SEED-{i:04d}", decisive_event_at=now - timedelta(hours=3 + i),
                                created_at=now - timedelta(hours=3 + i) + timedelta(seconds=40 + 30 * i))
                        for i, v in enumerate(thai[:8])]
            repo.insert_warnings(conn, warnings)
            seeded.warning_codes = [w.verification_code for w in warnings if w.verification_code]
    try:
        from forewarn.reputation.appeals import submit_appeal
    except ImportError:
        return seeded
    with store.begin() as conn:
        appeal = submit_appeal(conn, "phone", seeded.listed_suspicious, "owner of the shop line",
                               "This is our shop's delivery line; customers call it back every day.",
                               deadline_hours=72, now=now - timedelta(hours=5))
    seeded.appeal_id = appeal["appeal_id"]
    return seeded


def ready_store(tmp_path: Path, country: str = "TH") -> Store:
    from forewarn.config import load_settings
    from forewarn.store import open_store

    return open_store(load_settings(tmp_path / "node", country=country))


__all__ = ["Seeded", "number", "ready_store", "seed_node"]

