"""The forewarning engine: events and flags in time order → per-victim risk timelines → tiered
interventions (warning, call-back, payment hold, visit) → warnings, tasks and outbox messages.

It runs two ways with the same code: *streaming* (``ForewarningEngine.process`` for each event as
ingestion stores it; :func:`attach_to_bus` subscribes to :mod:`forewarn.ingest.bus`) and *batch*
(:func:`run` replays the stored events merged with the stored flags by time). A contact whose
counterpart is flagged only later is kept for the chain window and joins the victim's timeline
when the flag arrives ("retro" entries), so the order in which detectors finish does not matter.

Evidence has two strengths. *Contact* — a flagged number rang, texted or briefly spoke to the
person — is what nearly everyone gets from mass dialling; *engagement* (``risk.engagement_reasons``
in the policy) — a long call, a call back or a message to a suspect, a visit to a flagged link, and
the routine events (new payee, SIM swap, remote-access app, parcel redirect) that follow such
engagement — is a live attempt. Personal interventions need engagement within the chain window;
contacts alone, however many, reach at most the ``mark`` tier (no message, no task).

Re-running is safe: warning, alert and task identities derive from the victim and the triggering
event, so a replay of the same data issues nothing twice; tiers already fired are restored from
``fw_risk_state`` on start.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from forewarn.forewarning import suspects as sp
from forewarn.forewarning import tables as ft
from forewarn.forewarning.interventions import Interventions
from forewarn.forewarning.policy import Policy, Tier
from forewarn.forewarning.timeline import Entry, VictimTimeline
from forewarn.model.phone import country_of
from forewarn.store import Store
from forewarn.store import schema as t
from forewarn.store.db import utc

log = logging.getLogger("forewarn.forewarning")
RECENT_PER_KEY = 256
SWEEP_EVERY = 200_000


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stable_id(prefix: str, *parts: str) -> str:
    return f"{prefix}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}"


@dataclass
class Profile:
    language: str | None = None
    home_region: str | None = None
    country: str | None = None


@dataclass
class Fired:
    """One tier fired for one victim."""

    subscriber: str
    tier: int
    action: str
    score: float
    reasons: list[str]
    trigger_event_id: str | None
    trigger_at: datetime
    latency_s: float
    warning_id: str | None = None
    task_id: str | None = None


@dataclass
class EngineStats:
    events: int = 0
    flags: int = 0
    entries: int = 0
    retro_entries: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    skipped_existing: int = 0


def _fields(event: Any) -> tuple[str, str | None, dict[str, Any]]:
    """``(kind, event_id, data)`` of a typed event, a stored event (ingest bus) or a dict."""
    if isinstance(event, dict):
        return str(event["kind"]), event.get("event_id"), event
    data = getattr(event, "data", None)
    if isinstance(data, dict):
        return str(event.kind), event.event_id, data
    dumped = event.model_dump(mode="json")
    return str(dumped["kind"]), dumped.get("event_id"), dumped


class ForewarningEngine:
    def __init__(self, store: Store, policy: Policy | None = None, *, respect_flag_time: bool = True,
                 issuer: str | None = None, interventions: Interventions | None = None,
                 flag_refresh_seconds: float = 2.0, load_state: bool = True) -> None:
        self.store = store
        self.policy = policy or Policy.load()
        self.book = sp.SuspectBook(respect_time=respect_flag_time)
        self.profiles: dict[str, Profile] = {}
        self.timelines: dict[str, VictimTimeline] = {}
        self.recent: dict[tuple[str, str], deque[tuple[datetime, str, str | None, str, float]]] = {}
        self.stats = EngineStats()
        self._bank_codes: dict[str, str] = {}
        self.fired: list[Fired] = []
        self.on_fired: list[Callable[[Fired], None]] = []
        self.flag_refresh_seconds = flag_refresh_seconds
        self._last_refresh = 0.0
        self._signal_watermark: datetime | None = None
        self._tiers: list[Tier] = sorted(self.policy.tiers, key=lambda x: x.at_score)
        r = self.policy.risk
        self._window = timedelta(hours=r.chain_window_hours)
        self.interventions = interventions or Interventions(store, self.policy, issuer=issuer)
        if load_state:
            self._restore_state()

    # --- knowledge ---------------------------------------------------------------------------

    def _restore_state(self) -> None:
        with self.store.engine.connect() as conn:
            for row in conn.execute(select(ft.fw_risk_state)).mappings():
                tl = VictimTimeline(row["subscriber"], tiers_fired=set(row["tiers_fired"] or []),
                                    last_fired_at=utc(row["decisive_at"]), alert_id=row["alert_id"],
                                    case_id=row["case_id"], centre_id=row["centre_id"],
                                    first_contact_at=utc(row["first_contact_at"]),
                                    decisive_at=utc(row["decisive_at"]))
                self.timelines[tl.subscriber] = tl

    def load_profiles(self) -> int:
        """Languages and home regions from stored subscriber records (latest wins)."""
        n = 0
        with self.store.engine.connect() as conn:
            stmt = select(t.events.c.payload).where(t.events.c.kind == "subscriber").order_by(t.events.c.occurred_at)
            for (payload,) in conn.execution_options(yield_per=20_000).execute(stmt):
                self._subscriber(payload)
                n += 1
        return n

    def load_flags(self, *, signals_only: bool = False) -> list[sp.Flag]:
        with self.store.engine.connect() as conn:
            flags = sp.load_flags(conn, self.policy, signals_after=self._signal_watermark,
                                  include_indicators=not signals_only)
        if flags:
            latest = max(f.since for f in flags if f.source.startswith("signal:")) if any(
                f.source.startswith("signal:") for f in flags) else None
            if latest and (self._signal_watermark is None or latest > self._signal_watermark):
                # re-read a margin: detectors may store signals a little out of order
                self._signal_watermark = latest - timedelta(minutes=10)
        return flags

    def refresh_flags(self, force: bool = False) -> int:
        """Streaming: pick up signals (and indicators) stored since the last look."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.flag_refresh_seconds:
            return 0
        self._last_refresh = now
        added = 0
        for flag in self.load_flags(signals_only=self._signal_watermark is not None):
            added += bool(self.observe_flag(flag))
        return added

    def observe_flag(self, flag: sp.Flag, arrival: float | None = None) -> list[Fired]:
        """A subject became suspect: remember it and replay recent contacts with it."""
        arrival = arrival if arrival is not None else time.perf_counter()
        if not self.book.add(flag):
            return []
        self.stats.flags += 1
        touched: dict[str, str | None] = {}
        keys = [(flag.kind, flag.value)]
        for key in keys:
            for at, victim, event_id, tag, duration in list(self.recent.get(key, ())):
                if flag.since - at > self._window or at >= flag.since:
                    continue  # too old to matter, or seen after the flag (handled live)
                for entry in self._entries_for(tag, at, event_id, flag.value, duration, flag, victim, retro=True):
                    self._add(victim, entry)
                    self.stats.retro_entries += 1
                    touched[victim] = event_id
        fired: list[Fired] = []
        for victim, event_id in touched.items():
            fired += self._evaluate(victim, flag.since, event_id, arrival)
        return fired

    # --- events ------------------------------------------------------------------------------

    def process(self, event: Any, arrival: float | None = None) -> list[Fired]:
        """One event (typed, stored or dict), in time order. Returns the tiers it fired."""
        arrival = arrival if arrival is not None else time.perf_counter()
        kind, event_id, data = _fields(event)
        self.stats.events += 1
        if self.stats.events % SWEEP_EVERY == 0:
            self._sweep()
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []
        victims = handler(self, data, event_id)
        fired: list[Fired] = []
        for victim, at in victims:
            fired += self._evaluate(victim, at, event_id, arrival)
        return fired

    def process_many(self, events: Iterable[Any]) -> list[Fired]:
        arrival = time.perf_counter()
        self.refresh_flags()
        fired: list[Fired] = []
        for ev in events:
            fired += self.process(ev, arrival)
        return fired

    def _remember(self, kind: str, value: str, at: datetime, victim: str, event_id: str | None, tag: str,
                  duration: float = 0.0) -> None:
        key = (kind, value)
        dq = self.recent.get(key)
        if dq is None:
            dq = self.recent[key] = deque(maxlen=RECENT_PER_KEY)
        dq.append((at, victim, event_id, tag, duration))

    def _sweep(self) -> None:
        """Drop remembered contacts older than the chain window (bounded memory in long runs)."""
        if not self.recent:
            return
        newest = max(dq[-1][0] for dq in self.recent.values() if dq)
        cutoff = newest - self._window
        for key in [k for k, dq in self.recent.items() if not dq or dq[-1][0] < cutoff]:
            del self.recent[key]

    def _add(self, victim: str, entry: Entry) -> None:
        tl = self.timelines.get(victim)
        if tl is None:
            tl = self.timelines[victim] = VictimTimeline(victim)
        tl.maybe_reset_episode(entry.at, self.policy.risk, self.policy.first_threshold)
        stored = tl.add(entry, self.policy.risk)
        self.stats.entries += 1
        self.interventions.buffer_entry(victim, stored)

    def _nuisance(self, flag: sp.Flag) -> bool:
        r = self.policy.risk
        return (flag.scam_type in r.nuisance_scam_types
                or flag.source.removeprefix("signal:") in r.nuisance_detectors)

    def _entries_for(self, tag: str, at: datetime, event_id: str | None, counterpart: str, duration: float,
                     flag: sp.Flag, victim: str, retro: bool = False) -> list[Entry]:
        r = self.policy.risk
        w = r.weight
        out: list[Entry] = []
        scam_type = flag.scam_type

        def mk(reason: str) -> None:
            out.append(Entry(at, reason, w(reason), event_id, counterpart, scam_type, retro))

        if tag in ("call_out", "call_in", "msg", "reply") and self._nuisance(flag):
            mk("contact.nuisance")
            return out
        if tag in ("call_out", "call_in"):
            if tag == "call_in":
                # calling back a missed number out of curiosity is not a conversation with a scammer
                mk("contact.victim_called_suspect" if duration >= r.conversation_seconds
                   else "contact.called_back_no_conversation")
            elif duration <= 0:
                mk("contact.flagged_call_unanswered")
            else:
                mk("contact.flagged_call")
            if duration >= r.very_long_call_seconds:
                mk("call.very_long_with_suspect")
            elif duration >= r.long_call_seconds:
                mk("call.long_with_suspect")
        elif tag == "msg":
            mk("contact.flagged_message")
        elif tag == "reply":
            mk("contact.victim_messaged_suspect")
        elif tag == "pay":
            mk("bank.transfer_to_suspected_mule")
        elif tag == "payee":
            mk("bank.new_payee_suspected_mule" if "bank.new_payee_suspected_mule" in r.weights
               else "bank.transfer_to_suspected_mule")
        elif tag == "url":
            tl = self.timelines.get(victim)
            after = tl is not None and tl.contacted_within(at, self._window)
            mk("internet.flagged_url_visit_after_contact" if after else "internet.flagged_url_visit")
        return out

    def _after_contact(self, victim: str, at: datetime) -> bool:
        tl = self.timelines.get(victim)
        return tl is not None and tl.contacted_within(at, self._window)

    def _after_engagement(self, victim: str, at: datetime) -> bool:
        """A new payee, a SIM swap, a remote-access app or a parcel redirect is everyday life unless the
        person engaged with a suspect: scammers ring and text nearly everyone, so mere contact followed
        by a routine event is coincidence, not a chain."""
        tl = self.timelines.get(victim)
        return tl is not None and tl.engaged_within(at, self._window, self.policy.risk.engagement_reasons)

    # handlers return [(victim, time)] of the timelines they touched

    def _subscriber(self, data: dict[str, Any], _event_id: str | None = None) -> list[tuple[str, datetime]]:
        number = data.get("number")
        if number:
            prof = self.profiles.get(number) or Profile()
            prof.language = data.get("language") or prof.language
            prof.home_region = data.get("home_region") or prof.home_region
            prof.country = data.get("country") or prof.country
            self.profiles[number] = prof
        return []

    def _call(self, data: dict[str, Any], event_id: str | None) -> list[tuple[str, datetime]]:
        caller, callee = data["caller"], data["callee"]
        at = parse_time(data["start"])
        duration = float(data.get("duration_s") or 0)
        seen = at + timedelta(seconds=duration)  # a call record exists once the call has ended
        flag = self.book.phone(caller, at)
        if flag is not None and self.book.phone(callee, at) is None:
            for e in self._entries_for("call_out", at, event_id, caller, duration, flag, callee):
                self._add(callee, e)
            return [(callee, seen)]
        flag_in = self.book.phone(callee, at)
        if flag_in is not None and flag is None:
            for e in self._entries_for("call_in", at, event_id, callee, duration, flag_in, caller):
                self._add(caller, e)
            return [(caller, seen)]
        if flag is None and flag_in is None:
            self._remember(sp.PHONE, caller, at, callee, event_id, "call_out", duration)
            if duration > 0:
                self._remember(sp.PHONE, callee, at, caller, event_id, "call_in", duration)
        return []

    def _message(self, data: dict[str, Any], event_id: str | None) -> list[tuple[str, datetime]]:
        sender, recipient = data["sender"], data["recipient"]
        at = parse_time(data["sent_at"])
        flag = self.book.phone(sender, at)
        if flag is None:
            flag_to = self.book.phone(recipient, at)
            if flag_to is not None:  # a reply to a suspect: the person is in a conversation with them
                for e in self._entries_for("reply", at, event_id, recipient, 0, flag_to, sender):
                    self._add(sender, e)
                return [(sender, at)]
            self._remember(sp.PHONE, sender, at, recipient, event_id, "msg")
            self._remember(sp.PHONE, recipient, at, sender, event_id, "reply")
            return []
        for e in self._entries_for("msg", at, event_id, sender, 0, flag, recipient):
            self._add(recipient, e)
        return [(recipient, at)]

    def _payment(self, data: dict[str, Any], event_id: str | None) -> list[tuple[str, datetime]]:
        victim = data.get("payer_phone")
        if not victim:
            return []
        at = parse_time(data["paid_at"])
        payee = data["payee_account"]
        bank = str(data.get("payer_account", "")).partition(":")[0] or None
        tl = self.timelines.get(victim)
        if tl is not None and bank:
            tl.bank_code = bank
        elif bank:
            self._bank_codes[victim] = bank
        if self.book.account(data.get("payer_account"), at) is not None:
            return []  # a suspected mule passing money on: the payer is not a victim
        flag = self.book.account(payee, at)
        w = self.policy.risk.weight
        if flag is not None:
            self._add(victim, Entry(at, "bank.transfer_to_suspected_mule", w("bank.transfer_to_suspected_mule"),
                                    event_id, payee, flag.scam_type))
            return [(victim, at)]
        self._remember(sp.ACCOUNT, payee, at, victim, event_id, "pay")
        if data.get("new_payee"):
            reason = "bank.new_payee_after_contact" if self._after_engagement(victim, at) else "bank.new_payee"
            self._add(victim, Entry(at, reason, w(reason), event_id, payee, None))
            return [(victim, at)]
        return []

    def _signal(self, data: dict[str, Any], event_id: str | None) -> list[tuple[str, datetime]]:
        victim = data.get("subscriber")
        at = parse_time(data["observed_at"])
        stype = data.get("signal_type", "")
        value = data.get("indicator_value")
        w = self.policy.risk.weight
        if not victim:
            return []
        detail = data.get("detail") or {}
        bank = str(detail.get("bank") or detail.get("payer_account") or "").partition(":")[0]
        if bank and provider_is_bank(data):
            self._bank_codes[victim] = bank
            if victim in self.timelines:
                self.timelines[victim].bank_code = bank
        if stype == "url_visit" and value:
            flag = self.book.url(value, at)
            if flag is None:
                self._remember_url(value, at, victim, event_id)
                return []
            for e in self._entries_for("url", at, event_id, value, 0, flag, victim):
                self._add(victim, e)
            return [(victim, at)]
        if stype == "new_payee":
            flag = self.book.account(value, at) if value else None
            if flag is not None:
                reason = "bank.new_payee_suspected_mule" if "bank.new_payee_suspected_mule" in \
                    self.policy.risk.weights else "bank.transfer_to_suspected_mule"
                self._add(victim, Entry(at, reason, w(reason), event_id, value, flag.scam_type))
                return [(victim, at)]
            if value:
                self._remember(sp.ACCOUNT, value, at, victim, event_id, "payee")
            reason = "bank.new_payee_after_contact" if self._after_engagement(victim, at) else "bank.new_payee"
            self._add(victim, Entry(at, reason, w(reason), event_id, value, None))
            return [(victim, at)]
        base = _SIGNAL_REASONS.get(stype)
        if base is None:
            return []
        reason = base
        linked = self._after_engagement if base in _NEEDS_ENGAGEMENT else self._after_contact
        if f"{base}_after_contact" in self.policy.risk.weights and linked(victim, at):
            reason = f"{base}_after_contact"
        app_flag = self.book.app(value, at) if stype == "remote_access_app_installed" else None
        self._add(victim, Entry(at, reason, w(reason), event_id, value,
                                app_flag.scam_type if app_flag else None))
        return [(victim, at)]

    def _remember_url(self, url: str, at: datetime, victim: str, event_id: str | None) -> None:
        self._remember(sp.URL, url, at, victim, event_id, "url")
        try:
            from urllib.parse import urlsplit

            host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
        except ValueError:
            return
        labels = host.split(".")
        for i in range(max(0, len(labels) - 3), len(labels) - 1):
            self._remember(sp.DOMAIN, ".".join(labels[i:]), at, victim, event_id, "url")

    # --- tiers -------------------------------------------------------------------------------

    def _evaluate(self, victim: str, at: datetime, event_id: str | None, arrival: float) -> list[Fired]:
        tl = self.timelines.get(victim)
        if tl is None:
            return []
        score = tl.score(at, self.policy.risk)
        due = [tier for tier in self._tiers if score >= tier.at_score and tier.tier not in tl.tiers_fired]
        if due:
            due = self._by_evidence(tl, due, at)
        if not due:
            if len(tl.entries) > 64:
                tl.prune(at, self.policy.risk)
            return []
        reasons = tl.reasons(at, self.policy.risk)
        profile = self.profiles.get(victim) or Profile(country=country_of(victim))
        if tl.bank_code is None and victim in self._bank_codes:
            tl.bank_code = self._bank_codes[victim]
        fired = self.interventions.fire(tl, due, score=score, reasons=reasons, at=at, trigger_event_id=event_id,
                                        profile=profile, arrival=arrival)
        for f in fired:
            self.stats.fired[f.action] = self.stats.fired.get(f.action, 0) + 1
            for cb in self.on_fired:
                cb(f)
        self.fired.extend(fired)
        return fired

    def _by_evidence(self, tl: VictimTimeline, due: list[Tier], at: datetime) -> list[Tier]:
        """Personal steps (a warning and up) need engagement with a suspect within the chain window:
        being rung or texted by scammers — as nearly everyone is — is not a live attempt, however
        often it happens. Contacts alone get the light steps (a firewall mark), and only while no
        personal step has fired in this episode."""
        if tl.engaged_within(at, self._window, self.policy.risk.engagement_reasons):
            return [tier for tier in due if tier.needs_engagement]
        if any(tier.needs_engagement and tier.tier in tl.tiers_fired for tier in self._tiers):
            return []
        return [tier for tier in due if not tier.needs_engagement]

    def flush(self) -> None:
        """Persist buffered timeline entries and risk states."""
        self.interventions.flush(self.timelines, self.policy)


_SIGNAL_REASONS = {
    "remote_access_app_installed": "device.remote_access_app",
    "parcel_redirect": "post.parcel_redirect",
    "bulk_sim_parcel": "post.bulk_sim_parcel",
    "sim_swap": "telco.sim_swap",
    "account_takeover": "bank.account_takeover",
}
def provider_is_bank(data: dict[str, Any]) -> bool:
    return data.get("provider") == "bank"


_NEEDS_ENGAGEMENT = frozenset({"post.parcel_redirect", "telco.sim_swap", "device.remote_access_app"})
_HANDLERS: dict[str, Callable[[ForewarningEngine, dict[str, Any], str | None], list[tuple[str, datetime]]]] = {
    "call": ForewarningEngine._call,
    "message": ForewarningEngine._message,
    "payment": ForewarningEngine._payment,
    "signal": ForewarningEngine._signal,
    "subscriber": ForewarningEngine._subscriber,
}


# --- batch and streaming entry points --------------------------------------------------------------

@dataclass
class RunReport:
    events: int
    flags: int
    victims_at_risk: int
    fired: dict[str, int]
    retro_entries: int
    seconds: float
    skipped_existing: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stored_events(store: Store, since: datetime | None, until: datetime | None,
                   chunk: int = 20_000) -> Iterator[tuple[datetime, str, str, dict[str, Any]]]:
    """Stored events (all kinds but subscriber records) in time order, merged across kinds so each
    kind's stream uses the (kind, time) index."""
    def stream(kind: str) -> Iterator[tuple[datetime, str, str, dict[str, Any]]]:
        with store.engine.connect() as conn:
            stmt = select(t.events.c.occurred_at, t.events.c.event_id, t.events.c.payload).where(
                t.events.c.kind == kind)
            if since is not None:
                stmt = stmt.where(t.events.c.occurred_at >= since)
            if until is not None:
                stmt = stmt.where(t.events.c.occurred_at < until)
            stmt = stmt.order_by(t.events.c.occurred_at, t.events.c.event_id)
            for occurred, event_id, payload in conn.execution_options(stream_results=True, yield_per=chunk).execute(stmt):
                yield utc(occurred), event_id, kind, payload  # type: ignore[misc]
    yield from heapq.merge(*(stream(k) for k in ("call", "message", "payment", "signal")), key=lambda r: r[0])


def count_stored_events(store: Store) -> int:
    from sqlalchemy import func

    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.events).where(
            t.events.c.kind.in_(("call", "message", "payment", "signal")))).scalar_one())


def run(store: Store, *, policy: Policy | None = None, since: datetime | None = None,
        until: datetime | None = None, respect_flag_time: bool = True, issuer: str | None = None,
        progress: Callable[[int], None] | None = None) -> RunReport:
    """Replay stored events merged with stored flags (indicators, signals, suspect alerts) by time
    through the engine: timelines → interventions → warnings, tasks and outbox messages.

    ``respect_flag_time=False`` treats every flag as known from the start (hindsight; for studies
    only). Safe to run again: nothing already issued is issued twice.
    """
    started = time.perf_counter()
    engine = ForewarningEngine(store, policy, respect_flag_time=respect_flag_time, issuer=issuer)
    engine.load_profiles()
    flags = engine.load_flags()
    flag_iter = iter(flags)
    next_flag = next(flag_iter, None)
    n = 0
    for occurred, event_id, kind, payload in _stored_events(store, since, until):
        while next_flag is not None and next_flag.since <= occurred:
            engine.observe_flag(next_flag)
            next_flag = next(flag_iter, None)
        data = payload if isinstance(payload, dict) else {}
        data.setdefault("kind", kind)
        engine.process({**data, "event_id": event_id, "kind": kind})
        n += 1
        if progress is not None and n % 5000 == 0:
            progress(5000)
    while next_flag is not None:
        engine.observe_flag(next_flag)
        next_flag = next(flag_iter, None)
    engine.flush()
    personal = {tier.tier for tier in engine.policy.tiers if tier.needs_engagement}
    if progress is not None:
        progress(n % 5000)
    return RunReport(events=n, flags=engine.stats.flags,
                     victims_at_risk=sum(1 for tl in engine.timelines.values() if tl.tiers_fired & personal),
                     fired=dict(engine.stats.fired), retro_entries=engine.stats.retro_entries,
                     seconds=round(time.perf_counter() - started, 3),
                     skipped_existing=engine.interventions.skipped_existing)


def attach_to_bus(engine: ForewarningEngine) -> Callable[[], None]:
    """Feed every event ingestion stores to ``engine`` (streaming mode); returns the unsubscribe."""
    from forewarn.ingest import bus

    def on_events(events: list[Any]) -> None:
        arrival = time.perf_counter()
        engine.refresh_flags()
        for ev in sorted(events, key=lambda e: str(getattr(e, "occurred_at", ""))):
            if getattr(ev, "kind", None) == "subscriber":
                engine._subscriber(ev.data)
                continue
            engine.process(ev, arrival)

    return bus.subscribe(on_events)
