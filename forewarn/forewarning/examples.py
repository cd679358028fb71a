"""A small written scenario (our own examples, not collected data) for tests, the benchmark and the
docs: scam numbers and mule accounts known as indicators; victims who take a long call from a scam
number, install a remote-access app, add the mule as a new payee and pay it; bystanders who get a
missed or short call or an SMS from the same numbers and ordinary traffic among themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from forewarn.model.events import CallRecord, Message, Payment, ProviderSignal, SubscriberRecord
from forewarn.model.indicators import Indicator, IndicatorType

AnyEvent = CallRecord | Message | Payment | ProviderSignal | SubscriberRecord


def th_number(i: int) -> str:
    return f"+6681{i % 10_000_000:07d}"


def scam_number(i: int) -> str:
    return f"+85512{i % 1_000_000:06d}"


def mule_account(i: int) -> str:
    return f"THBK9:MULE{i:08d}"


@dataclass
class Scenario:
    events: list[AnyEvent] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    victims: list[dict[str, object]] = field(default_factory=list)
    bystanders: list[str] = field(default_factory=list)

    def sort(self) -> None:
        self.events.sort(key=lambda e: (e.time, e.event_id))


def victim_script(n: int, number: str, suspect: str, mule: str, at: datetime, *, language: str = "th",
                  region: str = "TH-10") -> tuple[list[AnyEvent], dict[str, object]]:
    """One victim's chain: long call (decisive) → remote-access app → new payee → payment."""
    call = CallRecord(event_id=f"v{n}-call", caller=suspect, callee=number, start=at, duration_s=600)
    decisive = at + timedelta(seconds=600)
    events: list[AnyEvent] = [
        SubscriberRecord(event_id=f"v{n}-sub", number=number, activated_at=at - timedelta(days=800), country="TH",
                         home_region=region, language=language, updated_at=at - timedelta(days=1)),
        call,
        ProviderSignal(event_id=f"v{n}-app", provider="internet", signal_type="remote_access_app_installed",
                       subscriber=number, indicator_type=IndicatorType.APP_PACKAGE,
                       indicator_value="com.remote.helper", observed_at=decisive + timedelta(minutes=8)),
        ProviderSignal(event_id=f"v{n}-payee", provider="bank", signal_type="new_payee", subscriber=number,
                       indicator_type=IndicatorType.BANK_ACCOUNT, indicator_value=mule,
                       observed_at=decisive + timedelta(minutes=25)),
        Payment(event_id=f"v{n}-pay", payer_account=f"THBK1:ACC{n:08d}", payer_phone=number, payee_account=mule,
                amount=Decimal("45000.00"), currency="THB", paid_at=decisive + timedelta(minutes=30), new_payee=True),
    ]
    truth = {"number": number, "decisive_at": decisive, "first_payment_at": decisive + timedelta(minutes=30),
             "first_contact_at": at}
    return events, truth


def build_scenario(victims: int = 20, bystanders: int = 200, *, start: datetime, seed: int = 7,
                   suspects: int = 5) -> Scenario:
    rng = random.Random(seed)
    sc = Scenario()
    scam = [scam_number(i) for i in range(suspects)]
    mules = [mule_account(i) for i in range(suspects)]
    known = start - timedelta(days=2)
    for i, number in enumerate(scam):
        sc.indicators.append(Indicator(type=IndicatorType.PHONE, value=number, confidence=85, source="examples",
                                       first_seen=known, last_seen=known, scam_type="impersonation.police"))
        sc.indicators.append(Indicator(type=IndicatorType.BANK_ACCOUNT, value=mules[i], confidence=80,
                                       source="examples", first_seen=known, last_seen=known))
    for n in range(victims):
        at = start + timedelta(minutes=rng.uniform(0, 600))
        events, truth = victim_script(n, th_number(n), scam[n % suspects], mules[n % suspects], at)
        sc.events += events
        sc.victims.append(truth)
    for b in range(bystanders):
        number = th_number(1_000_000 + b)
        sc.bystanders.append(number)
        at = start + timedelta(minutes=rng.uniform(0, 600))
        sc.events.append(SubscriberRecord(event_id=f"b{b}-sub", number=number, activated_at=at - timedelta(days=500),
                                          country="TH", home_region="TH-50", language="th",
                                          updated_at=at - timedelta(days=1)))
        suspect = scam[b % suspects]
        roll = rng.random()
        if roll < 0.5:  # a missed or short call from a scam number: contact, not engagement
            sc.events.append(CallRecord(event_id=f"b{b}-scam", caller=suspect, callee=number, start=at,
                                        duration_s=rng.choice([0.0, 0.0, 12.0, 25.0])))
        elif roll < 0.8:
            sc.events.append(Message(event_id=f"b{b}-sms", sender=suspect, recipient=number, sent_at=at,
                                     text="Your parcel is held at customs, call us"))
        for k in range(3):  # ordinary life
            sc.events.append(CallRecord(event_id=f"b{b}-c{k}", caller=number, callee=th_number(2_000_000 + b + k),
                                        start=at + timedelta(hours=k + 1), duration_s=rng.uniform(20, 900)))
        if rng.random() < 0.2:
            sc.events.append(Payment(event_id=f"b{b}-pay", payer_account=f"THBK2:B{b:08d}", payer_phone=number,
                                     payee_account=f"THBK3:SHOP{b:06d}", amount=Decimal("350.00"), currency="THB",
                                     paid_at=at + timedelta(hours=5), new_payee=True))
    sc.sort()
    return sc
