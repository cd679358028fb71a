"""Call and SMS decisions: allow, mark or block, with a label in the recipient's language, reason
codes (see :mod:`forewarn.firewall.reasons`), a score and a cache TTL.

Order of work for a call, cheapest and most certain first:
1. normalise the numbers (E.164 fast path, no parsing library for ``+digits``);
2. the reputation snapshot in memory (decayed score, flags) and the static policy rules (home
   caller ID over an international trunk, claimed-country mismatch, roaming checks);
3. if that evidence already blocks, stop: a number already known to be bad never waits on the
   network;
4. otherwise the live counters (guarded: time budget, cache, back-off) and the policy's rules;
5. allow-lists win over everything; the rules they override are kept as ``overridden:<code>``.

Evidence combines by noisy-OR of component scores (0–100). Only components that may block
(trusted indicators, analyst verdicts, policy rules set to ``block``) count towards blocking;
citizen reports, behaviour and content screening are capped by the policy (``mark`` by default).
"""

from __future__ import annotations

import time as _time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import phonenumbers

from forewarn.firewall.counters import GuardedCounters
from forewarn.firewall.labels import COUNTRY_LANGUAGE, label, language_tag
from forewarn.firewall.policy import Policy
from forewarn.firewall.screening import ContentScreener, extract_indicators, result_indicators
from forewarn.model.indicators import IndicatorType, as_utc
from forewarn.model.phone import (
    InvalidPhoneNumber,
    InvalidSenderId,
    country_of,
    normalise_phone,
    normalise_sender,
)
from forewarn.reputation.index import (
    APPEAL_OVERDUE,
    APPEAL_PENDING,
    PARTNER,
    REPORTS,
    TRUSTED,
    VERDICT,
    ReputationIndex,
    ReputationSnapshot,
)
from forewarn.reputation.keys import E164_RE, indicator_key

if TYPE_CHECKING:
    from forewarn.firewall.decisions import DecisionLog

SPAM_TYPES = frozenset({"spam", "telemarketing", "robocall", "nuisance", "marketing"})
INGRESSES = ("domestic", "international", "roaming")
_CC_REGIONS: dict[int, tuple[str, ...]] = phonenumbers.COUNTRY_CODE_TO_REGION_CODE


class DecisionInputError(ValueError):
    """A request the firewall cannot decide (e.g. an invalid recipient); the message says why."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow | mark | block
    label: str | None
    reasons: tuple[str, ...]
    score: float
    ttl_s: int

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "label": self.label, "reasons": list(self.reasons),
                "score": round(self.score, 1), "ttl_s": self.ttl_s}


def epoch(value: datetime | float | int | str | None) -> float:
    """Decision time as epoch seconds: now, a datetime, epoch seconds or an ISO 8601 string."""
    if value is None:
        return _time.time()
    if type(value) is float:
        return value
    if isinstance(value, datetime):
        return as_utc(value).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00"))).timestamp()
        except ValueError:
            pass
    raise DecisionInputError(f"time {str(value)[:40]!r} is not an ISO 8601 time or epoch seconds")


# calling code (as digits) -> its only region, or None when several regions share it (+1, +7, +44...)
_PREFIX_REGION: dict[str, str | None] = {str(code): (regions[0] if len(regions) == 1 else None)
                                         for code, regions in _CC_REGIONS.items()}
_E164_CACHE: dict[str, tuple[str, str | None] | None] = {}


def _e164_info(raw: str) -> tuple[str, str | None] | None:
    """``(e164, country)`` for a ``+digits`` string with a known calling code, else None (cached)."""
    hit = _E164_CACHE.get(raw, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    info: tuple[str, str | None] | None = None
    if E164_RE.match(raw):
        digits = raw[1:]
        for n in (1, 2, 3):
            prefix = digits[:n]
            if prefix in _PREFIX_REGION:
                region = _PREFIX_REGION[prefix]
                info = (raw, region if region is not None else country_of(raw))
                break
    if len(_E164_CACHE) >= 1_000_000:  # bounded: unknown callers are mostly one-offs
        _E164_CACHE.clear()
    _E164_CACHE[raw] = info
    return info


def _fast_country(e164: str) -> str | None:
    info = _e164_info(e164)
    return info[1] if info is not None else country_of(e164)


class _Evidence:
    """Components of one decision: (score, label key, reason, may block)."""

    __slots__ = ("items", "notes")

    def __init__(self) -> None:
        self.items: list[tuple[float, str, str, bool]] = []
        self.notes: list[str] = []

    def add(self, score: float, label_key: str, reason: str, may_block: bool) -> None:
        self.items.append((score, label_key, reason, may_block))

    def combined(self, blocking_only: bool = False) -> float:
        miss = 1.0
        for score, _, _, may_block in self.items:
            if may_block or not blocking_only:
                miss *= 1.0 - min(score, 100.0) / 100.0
        return 100.0 * (1.0 - miss)


class Firewall:
    """Decisions from a reputation index, live counters, content screening and a country policy.

    ``languages`` maps subscriber numbers to their language (from ``subscriber`` events); it may be
    swapped whole at any time (``firewall.languages = new``), as may ``regions`` (subscriber number ->
    home region). When ``decision_log`` is set, every decision is counted in it and every mark or
    block buffered for the log (in memory: the log never waits on the store).
    """

    def __init__(self, index: ReputationIndex, policy: Policy, counters: GuardedCounters | None = None,
                 screener: ContentScreener | None = None, languages: Mapping[str, str] | None = None) -> None:
        self.index = index
        self.policy = policy
        self.counters = counters
        self.screener = screener
        self.languages: Mapping[str, str] = languages or {}
        self.regions: Mapping[str, str] = {}
        self.decision_log: DecisionLog | None = None
        self._home = policy.country
        self._plain_allow = Decision("allow", None, (), 0.0, policy.ttl_allow)

    # --- helpers ------------------------------------------------------------------------------

    def _phone(self, raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        if _e164_info(raw) is not None:
            return raw  # the hot path: already E.164 from the switch (numbering-plan checks skipped)
        try:
            return normalise_phone(raw, self._home)
        except InvalidPhoneNumber:
            return None

    def language_for(self, recipient: str, country: str | None) -> str:
        lang = language_tag(self.languages.get(recipient))
        if lang:
            return lang
        return COUNTRY_LANGUAGE.get(country or "", self.policy.language)

    def _reputation(self, snap: ReputationSnapshot, key: int, now: float, ev: _Evidence) -> None:
        entry = snap.get(key, now)
        if entry is None or entry.score <= 0:
            return
        flags = entry.flags
        if flags & APPEAL_OVERDUE:
            ev.notes.append("appeal.overdue_lifted")
            return
        if entry.score < self.policy.min_evidence:
            return
        label_key = "suspected_spam" if entry.scam_type in SPAM_TYPES else "suspected_fraud"
        trusted = bool(flags & TRUSTED)
        reason = "reputation.listed" if trusted else "reputation.citizen_reports"
        may_block = trusted or self.policy.reports_max_action == "block"
        score = entry.score
        if not may_block and self.policy.reports_max_action == "allow":
            score = 0.0
        ev.add(score, label_key, reason, may_block)
        if trusted and flags & REPORTS:
            ev.notes.append("reputation.citizen_reports")
        if flags & PARTNER:
            ev.notes.append("reputation.partner")
        if flags & VERDICT:
            ev.notes.append("reputation.analyst_confirmed")
        if flags & APPEAL_PENDING:
            ev.notes.append("appeal.pending")

    def _log(self, kind: str, at: float, decision: Decision, source: str, target: str,
             target_country: str | None) -> None:
        assert self.decision_log is not None
        region = self.regions.get(target) or target_country or "unknown"
        self.decision_log.record(at, kind, decision.action, source, target, region, decision.reasons,
                                 decision.score, self.language_for(target, target_country))

    def _policy_rule(self, action: str, label_key: str, reason: str, ev: _Evidence) -> None:
        if action != "allow":
            ev.add(self.policy.score_for(action), label_key, reason, action == "block")

    def _counters_wanted(self) -> bool:
        return self.counters is not None and self.policy.counters_enabled

    def _counter_rules(self, feats: Mapping[str, float] | None, ev: _Evidence) -> None:
        if feats is None:
            ev.notes.append("counters.unavailable")
            return
        may_block = self.policy.counters_max_action == "block"
        for rule in self.policy.counter_rules:
            if all(feats.get(name, 0.0) >= minimum for name, minimum in rule.when.items()):
                ev.add(rule.score, rule.label, rule.reason, may_block)

    def _finish(self, ev: _Evidence, allow_reason: str | None, intl_label: bool, recipient: str,
                recipient_country: str | None, block_ttl: float | None) -> Decision:
        policy = self.policy
        total = ev.combined()
        blocking = ev.combined(blocking_only=True)
        floor = policy.min_evidence
        reasons = [r for s, _, r, _ in sorted(ev.items, key=lambda item: -item[0]) if s >= floor]
        if allow_reason is not None:
            overridden = [f"overridden:{r}" for r in reasons]
            return Decision("allow", None, (allow_reason, *overridden, *ev.notes), 0.0, policy.ttl_allow)
        if blocking >= policy.block_threshold:
            action = "block"
        elif total >= policy.mark_threshold or intl_label:
            action = "mark"
        else:
            return Decision("allow", None, (*reasons, *ev.notes), total, policy.ttl_allow)
        if action != "allow" and total >= policy.mark_threshold and ev.items:
            label_key = max(ev.items, key=lambda item: item[0])[1]
        else:
            label_key = "international_call"
        if intl_label and "policy.international_call" not in reasons:
            reasons.append("policy.international_call")
        ttl = policy.ttl_block if action == "block" else policy.ttl_mark
        if action == "block" and block_ttl is not None:
            ttl = max(1, min(ttl, int(block_ttl)))
        lang = self.language_for(recipient, recipient_country)
        return Decision(action, label(label_key, lang), (*reasons, *ev.notes), total, ttl)

    # --- calls --------------------------------------------------------------------------------

    # A decision is written once, as a generator that yields ``(number, time)`` when it needs that
    # number's live counters and receives their features (or None): :meth:`decide_call` answers
    # such a request by looking them up in this thread, :meth:`decide_call_async` by awaiting
    # them, so that a worker's event loop serves other requests while Redis answers.

    def _counted(self, steps: Generator[tuple[str, float], Mapping[str, float] | None, Decision]) -> Decision:
        counters = self.counters
        try:
            wanted = next(steps)
            while True:
                assert counters is not None
                wanted = steps.send(counters.features(*wanted))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _counted_async(self, steps: Generator[tuple[str, float], Mapping[str, float] | None, Decision],
                             ) -> Decision:
        counters = self.counters
        try:
            wanted = next(steps)
            while True:
                assert counters is not None
                wanted = steps.send(await counters.features_async(*wanted))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def decide_call(self, caller: str, callee: str, ingress: str = "domestic", claimed_country: str | None = None,
                    time: datetime | float | int | str | None = None, *, observe: bool | None = None) -> Decision:
        """Decide one call. Raises :class:`DecisionInputError` for an invalid callee, ingress or time."""
        return self._counted(self._call_steps(caller, callee, ingress, claimed_country, time, observe))

    async def decide_call_async(self, caller: str, callee: str, ingress: str = "domestic",
                                claimed_country: str | None = None, time: datetime | float | int | str | None = None,
                                *, observe: bool | None = None) -> Decision:
        """:meth:`decide_call` for an event loop: a counters look-up over the network is awaited."""
        return await self._counted_async(self._call_steps(caller, callee, ingress, claimed_country, time, observe))

    def _call_steps(self, caller: str, callee: str, ingress: str, claimed_country: str | None,
                    time: datetime | float | int | str | None, observe: bool | None,
                    ) -> Generator[tuple[str, float], Mapping[str, float] | None, Decision]:
        now = epoch(time)
        if ingress not in INGRESSES:
            raise DecisionInputError(f"ingress {str(ingress)[:20]!r} is not one of: {', '.join(INGRESSES)}")
        info = _e164_info(callee) if isinstance(callee, str) else None
        if info is None:
            callee_n = self._phone(callee)
            if callee_n is None:
                raise DecisionInputError(f"callee {str(callee)[:40]!r} is not a valid phone number")
            callee_country = _fast_country(callee_n)
        else:
            callee_n, callee_country = info
        policy = self.policy
        snap = self.index.snapshot
        ev = _Evidence()
        info = _e164_info(caller) if isinstance(caller, str) else None
        caller_n = info[0] if info is not None else self._phone(caller)
        allow_reason: str | None = None
        block_ttl: float | None = None
        caller_country: str | None = None
        if caller_n is None:
            raw = caller.strip() if isinstance(caller, str) else ""
            kind = snap.allow.kind_of(raw)  # emergency short codes have no E.164 form
            if kind is not None:
                allow_reason = f"allowlist.{kind}"
            ev.add(policy.score_for("mark"), "possible_spoof", "caller.invalid", False)
        else:
            caller_country = info[1] if info is not None else _fast_country(caller_n)
            allow = snap.allow
            kind = allow.numbers.get(caller_n)
            if kind is not None:
                allow_reason = f"allowlist.{kind}"
            elif allow.personal and allow.personal_allows(callee_n, caller_n):
                allow_reason = "allowlist.personal"
            key = int(caller_n[1:])
            self._reputation(snap, key, now, ev)
            if ingress == "international" and caller_country == self._home:
                self._policy_rule(policy.home_cli_over_international, "possible_spoof",
                                  "policy.home_cli_over_international", ev)
            if ingress == "roaming" and caller_country != self._home:
                self._policy_rule(policy.roaming_foreign_cli, "possible_spoof", "policy.roaming_foreign_cli", ev)
            if claimed_country and caller_country and claimed_country.strip().upper() != caller_country:
                self._policy_rule(policy.claimed_country_mismatch, "possible_spoof",
                                  "policy.claimed_country_mismatch", ev)
            if allow_reason is None and (not ev.items or ev.combined(blocking_only=True) < policy.block_threshold):
                if self._counters_wanted():  # the only step that may touch the network
                    self._counter_rules((yield caller_n, now), ev)
            else:
                entry = snap.get(key, now)
                if entry is not None and entry.score >= policy.block_threshold:
                    block_ttl = snap.decay.remaining_s(entry.base, policy.block_threshold, now - entry.last_seen,
                                                       entry.lifetime_s)
        intl_label = policy.mark_international and ingress == "international"
        if not ev.items and not ev.notes and allow_reason is None and not intl_label:
            decision = self._plain_allow  # the common case: nothing known, nothing odd
        else:
            decision = self._finish(ev, allow_reason, intl_label, callee_n, callee_country, block_ttl)
        if (policy.observe_attempts if observe is None else observe) and caller_n is not None:
            self.observe_call(caller_n, callee_n, now, ingress, caller_country, callee_country)
        decision_log = self.decision_log
        if decision_log is not None:
            if decision.action == "allow":
                decision_log.count_allow(now, "call")
            else:
                self._log("call", now, decision, caller_n or str(caller)[:64], callee_n, callee_country)
        return decision

    def observe_call(self, caller: str, callee: str, at: float, ingress: str = "domestic",
                     caller_country: str | None = None, callee_country: str | None = None) -> None:
        """Count a decided attempt in the live counters (the HTTP route does it after answering)."""
        if self.counters is not None and self.policy.counters_enabled:
            self.counters.observe_call(caller, callee, at, ingress, caller_country, callee_country)

    def decide_calls(self, calls: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """Batch form: each mapping has the keyword arguments of :meth:`decide_call`."""
        return [self.decide_call(**call) for call in calls]

    # --- SMS ----------------------------------------------------------------------------------

    def decide_sms(self, sender: str, recipient: str, text: str = "",
                   time: datetime | float | int | str | None = None, *, observe: bool | None = None) -> Decision:
        """Decide one SMS. Raises :class:`DecisionInputError` for an invalid recipient or time."""
        return self._counted(self._sms_steps(sender, recipient, text, time, observe))

    async def decide_sms_async(self, sender: str, recipient: str, text: str = "",
                               time: datetime | float | int | str | None = None, *,
                               observe: bool | None = None) -> Decision:
        """:meth:`decide_sms` for an event loop: a counters look-up over the network is awaited."""
        return await self._counted_async(self._sms_steps(sender, recipient, text, time, observe))

    def _sms_steps(self, sender: str, recipient: str, text: str, time: datetime | float | int | str | None,
                   observe: bool | None) -> Generator[tuple[str, float], Mapping[str, float] | None, Decision]:
        now = epoch(time)
        recipient_n = self._phone(recipient)
        if recipient_n is None:
            raise DecisionInputError(f"recipient {str(recipient)[:40]!r} is not a valid phone number")
        if not isinstance(text, str) or len(text) > 10_000:
            raise DecisionInputError("text must be a string of at most 10,000 characters")
        policy = self.policy
        snap = self.index.snapshot
        ev = _Evidence()
        allow_reason: str | None = None
        sender_n: str | None
        try:
            sender_n = normalise_sender(sender, self._home) if isinstance(sender, str) else None
        except InvalidSenderId:
            sender_n = None
        is_number = sender_n is not None and sender_n.startswith("+")
        if sender_n is None:
            ev.add(policy.score_for("mark"), "unverified_sender", "sender.invalid", False)
        else:
            kind = snap.allow.kind_of(sender_n)
            if kind is not None:
                allow_reason = f"allowlist.{kind}"
            elif snap.allow.personal_allows(recipient_n, sender_n):
                allow_reason = "allowlist.personal"
            key = int(sender_n[1:]) if is_number else indicator_key(IndicatorType.SENDER_ID, sender_n)
            self._reputation(snap, key, now, ev)
            if not is_number and kind is None:
                self._policy_rule(policy.sms_unregistered_sender_id, "unverified_sender",
                                  "policy.sender_id_unregistered", ev)
        self._screen(text, snap, now, ev)
        if sender_n is not None and is_number and ev.combined(blocking_only=True) < policy.block_threshold \
                and allow_reason is None and self._counters_wanted():
            self._counter_rules((yield sender_n, now), ev)
        recipient_country = _fast_country(recipient_n)
        decision = self._finish(ev, allow_reason, False, recipient_n, recipient_country, None)
        if (policy.observe_attempts if observe is None else observe) and sender_n is not None \
                and self.counters is not None and policy.counters_enabled:
            self.counters.observe_message(sender_n, recipient_n, now)
        decision_log = self.decision_log
        if decision_log is not None:
            if decision.action == "allow":
                decision_log.count_allow(now, "sms")
            else:
                self._log("sms", now, decision, sender_n or str(sender)[:64], recipient_n, recipient_country)
        return decision

    def _screen(self, text: str, snap: ReputationSnapshot, now: float, ev: _Evidence) -> None:
        if not text:
            return
        found: list[tuple[IndicatorType, str]] = []
        result = None
        if self.screener is not None:
            try:
                result = self.screener.screen_one(text, lang=None, channel="sms")
            except Exception:  # a screening failure degrades the decision, never stops it
                result = None
        if result is None:
            ev.notes.append("screening.unavailable")
            found = extract_indicators(text, self._home)
        else:
            found = result_indicators(result) or extract_indicators(text, self._home)
            score = float(getattr(result, "score", 0.0) or 0.0)
            policy = self.policy
            if score >= policy.sms_screening_mark:
                high = score >= policy.sms_screening_block
                may_block = high and policy.sms_screening_max_action == "block"
                ev.add(100.0 * score if may_block else min(100.0 * score, policy.block_threshold - 1),
                       "suspected_fraud", "screening.high_risk" if high else "screening.suspicious", may_block)
        seen: set[int] = set()
        for kind, value in found[:20]:
            try:
                key = int(value[1:]) if kind is IndicatorType.PHONE else indicator_key(kind, value)
            except ValueError:
                continue
            if key in seen:
                continue
            seen.add(key)
            entry = snap.get(key, now)
            if entry is not None and entry.flags & TRUSTED and not entry.flags & APPEAL_OVERDUE \
                    and entry.score >= self.policy.min_evidence:
                reason = "reputation.number_in_text_listed" if kind is IndicatorType.PHONE else "reputation.url_listed"
                ev.add(entry.score, "suspected_fraud", reason, True)

    def decide_sms_many(self, messages: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Batch form: each mapping has the keyword arguments of :meth:`decide_sms`."""
        return [self.decide_sms(**msg) for msg in messages]
