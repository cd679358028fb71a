"""A potential victim's risk timeline: the reasons raised by every provider's events, in time order,
combined into one score.

Each entry has a reason code (``call.long_with_suspect``, ``device.remote_access_app_after_contact``
...; weights in the policy), the event that raised it and the counterpart involved. The score at a
time is ``1 - Π(1 - w_i · 0.5^(age_i / half_life))``: independent pieces of evidence combine, and
old ones fade. A repeat of the same reason from the same counterpart counts with a diminishing
factor, so one scammer ringing ten times does not look like ten scammers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from forewarn.forewarning.policy import RiskPolicy

CONTACT_PREFIXES = ("contact.", "call.")
# contacts that say only that a scammer tried: a ring nobody answered, a call back that did not
# connect or lasted seconds, a wangiri ring — not that anyone listened
WEAK_CONTACTS = frozenset({"contact.flagged_call_unanswered", "contact.called_back_no_conversation",
                           "contact.nuisance"})
MIN_EFFECT = 0.002  # an entry whose decayed weight is below this is dropped from memory


@dataclass(frozen=True)
class Entry:
    at: datetime
    reason: str
    weight: float
    event_id: str | None = None
    counterpart: str | None = None
    scam_type: str | None = None
    retro: bool = False


@dataclass
class VictimTimeline:
    subscriber: str
    entries: list[Entry] = field(default_factory=list)
    tiers_fired: set[int] = field(default_factory=set)
    last_fired_at: datetime | None = None
    first_contact_at: datetime | None = None
    decisive_at: datetime | None = None
    alert_id: str | None = None
    case_id: str | None = None
    centre_id: str | None = None
    bank_code: str | None = None
    _repeats: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def add(self, entry: Entry, policy: RiskPolicy) -> Entry:
        """Add an entry (weight reduced for repeats); returns the entry as stored."""
        key = (entry.reason, entry.counterpart)
        n = self._repeats.get(key, 0)
        self._repeats[key] = n + 1
        stored = entry if n == 0 else Entry(entry.at, entry.reason, entry.weight * policy.repeat_factor ** n,
                                            entry.event_id, entry.counterpart, entry.scam_type, entry.retro)
        if entry.reason.startswith(CONTACT_PREFIXES) and (self.first_contact_at is None or entry.at < self.first_contact_at):
            self.first_contact_at = entry.at
        # entries arrive nearly in time order; retro entries may be older — keep the list sorted
        if self.entries and stored.at < self.entries[-1].at:
            idx = len(self.entries)
            while idx > 0 and self.entries[idx - 1].at > stored.at:
                idx -= 1
            self.entries.insert(idx, stored)
        else:
            self.entries.append(stored)
        return stored

    def _effects(self, at: datetime, policy: RiskPolicy) -> list[tuple[float, Entry]]:
        half_life = policy.half_life_hours * 3600
        out = []
        for e in self.entries:
            age = max(0.0, (at - e.at).total_seconds())
            if e.at > at:
                continue
            out.append((e.weight * math.pow(0.5, age / half_life), e))
        return out

    def score(self, at: datetime, policy: RiskPolicy) -> float:
        remain = 1.0
        for effect, _ in self._effects(at, policy):
            remain *= 1.0 - effect
        return 1.0 - remain

    def reasons(self, at: datetime, policy: RiskPolicy) -> list[str]:
        """Distinct reason codes, strongest first."""
        best: dict[str, float] = {}
        for effect, e in self._effects(at, policy):
            best[e.reason] = max(best.get(e.reason, 0.0), effect)
        return [r for r, _ in sorted(best.items(), key=lambda kv: -kv[1])]

    def counterparts(self) -> list[str]:
        return sorted({e.counterpart for e in self.entries if e.counterpart})

    def scam_type(self) -> str | None:
        for e in reversed(self.entries):
            if e.scam_type:
                return e.scam_type
        return None

    def contacted_within(self, at: datetime, window: timedelta) -> bool:
        """A suspect reached the person (more than a ring) within ``window`` before ``at``."""
        return any(e.reason.startswith(CONTACT_PREFIXES) and e.reason not in WEAK_CONTACTS
                   and at - window <= e.at <= at for e in self.entries)

    def engaged_within(self, at: datetime, window: timedelta, engagement: frozenset[str]) -> bool:
        """The person engaged with a suspect (a reason in ``engagement``) within ``window`` before ``at``."""
        return any(e.reason in engagement and at - window <= e.at <= at for e in self.entries)

    def prune(self, at: datetime, policy: RiskPolicy) -> None:
        half_life = policy.half_life_hours * 3600
        keep = []
        for e in self.entries:
            age = max(0.0, (at - e.at).total_seconds())
            if e.weight * math.pow(0.5, age / half_life) >= MIN_EFFECT:
                keep.append(e)
        self.entries = keep

    def maybe_reset_episode(self, at: datetime, policy: RiskPolicy, first_threshold: float) -> None:
        """After a quiet spell below half the first threshold, tiers may fire again."""
        if not self.tiers_fired or self.last_fired_at is None:
            return
        if at - self.last_fired_at >= timedelta(days=policy.episode_reset_days) and \
                self.score(at, policy) < first_threshold / 2:
            self.tiers_fired.clear()
            self.alert_id = None
            self.decisive_at = None
