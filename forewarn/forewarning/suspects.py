"""What the node holds to be suspect, and since when: numbers and sender IDs, URLs and domains,
accounts (suspected mules) and app packages.

Knowledge comes only from records other capabilities wrote: active indicators at or above the
policy's confidence, signals and suspect alerts at or above the policy's score. Each flag keeps the
time it became known, so a replay never warns on knowledge the node did not yet have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from forewarn.forewarning.policy import Policy
from forewarn.store import schema as t
from forewarn.store.db import utc

PHONE, URL, DOMAIN, ACCOUNT, APP = "phone", "url", "domain", "account", "app"
_INDICATOR_KIND = {"phone": PHONE, "sender_id": PHONE, "url": URL, "domain": DOMAIN, "bank_account": ACCOUNT,
                   "ewallet": ACCOUNT, "crypto_wallet": ACCOUNT, "app_package": APP}
_SUBJECT_KIND = {"phone": PHONE, "sender_id": PHONE, "url": URL, "domain": DOMAIN, "account": ACCOUNT}


@dataclass(frozen=True)
class Flag:
    kind: str
    value: str
    since: datetime
    score: float
    scam_type: str | None
    source: str


class SuspectBook:
    """Flags by kind and value; the earliest flag wins, a later one may add a scam type."""

    def __init__(self, respect_time: bool = True) -> None:
        self.respect_time = respect_time
        self._flags: dict[str, dict[str, Flag]] = {PHONE: {}, URL: {}, DOMAIN: {}, ACCOUNT: {}, APP: {}}

    def __len__(self) -> int:
        return sum(len(v) for v in self._flags.values())

    def add(self, flag: Flag) -> bool:
        """Record ``flag``; True when it flags something not flagged before (or flags it earlier)."""
        book = self._flags[flag.kind]
        old = book.get(flag.value)
        if old is None or flag.since < old.since:
            scam = flag.scam_type or (old.scam_type if old else None)
            book[flag.value] = Flag(flag.kind, flag.value, flag.since, max(flag.score, old.score if old else 0),
                                    scam, flag.source)
            return True
        if old.scam_type is None and flag.scam_type:
            book[flag.value] = Flag(old.kind, old.value, old.since, old.score, flag.scam_type, old.source)
        return False

    def _get(self, kind: str, value: str | None, at: datetime) -> Flag | None:
        if not value:
            return None
        flag = self._flags[kind].get(value)
        if flag is None or (self.respect_time and flag.since > at):
            return None
        return flag

    def phone(self, value: str | None, at: datetime) -> Flag | None:
        return self._get(PHONE, value, at)

    def account(self, value: str | None, at: datetime) -> Flag | None:
        if not value:
            return None
        return self._get(ACCOUNT, value, at) or self._get(ACCOUNT, value.partition(":")[2] or None, at)

    def app(self, value: str | None, at: datetime) -> Flag | None:
        return self._get(APP, value, at)

    def url(self, value: str | None, at: datetime) -> Flag | None:
        """A URL is flagged itself or through its host or any parent domain."""
        if not value:
            return None
        found = self._get(URL, value, at)
        if found:
            return found
        try:
            host = urlsplit(value if "://" in value else "http://" + value).hostname or value
        except ValueError:
            host = value
        labels = host.lower().split(".")
        for i in range(len(labels) - 1):
            found = self._get(DOMAIN, ".".join(labels[i:]), at)
            if found:
                return found
        return None


def flag_from_signal_row(row: object, policy: Policy) -> Flag | None:
    kind = _SUBJECT_KIND.get(getattr(row, "subject_type", ""))
    if kind is None or getattr(row, "score", 0) < policy.risk.min_score_for(getattr(row, "detector", "")):
        return None
    return Flag(kind, row.subject, utc(row.observed_at), float(row.score), row.scam_type,  # type: ignore[attr-defined,arg-type]
                f"signal:{row.detector}")  # type: ignore[attr-defined]


def load_flags(conn: Connection, policy: Policy, *, signals_after: datetime | None = None,
               include_indicators: bool = True) -> list[Flag]:
    """Flags from indicators, signals and suspect alerts, oldest first."""
    flags: list[Flag] = []
    if include_indicators:
        rows = conn.execute(select(t.indicators).where(
            t.indicators.c.revoked.is_(False), t.indicators.c.confidence >= policy.risk.indicator_min_confidence))
        for r in rows:
            kind = _INDICATOR_KIND.get(r.type)
            if kind:
                flags.append(Flag(kind, r.value, utc(r.first_seen), r.confidence / 100, r.scam_type,  # type: ignore[arg-type]
                                  f"indicator:{r.source}"))
        alerts = conn.execute(select(t.alerts).where(t.alerts.c.role == "suspect",
                                                     t.alerts.c.score >= policy.risk.suspect_min_score))
        for a in alerts:
            kind = _SUBJECT_KIND.get(a.subject_type)
            if kind:
                flags.append(Flag(kind, a.subject, utc(a.created_at), a.score, a.scam_type, "alert"))  # type: ignore[arg-type]
    stmt = select(t.signals.c.subject_type, t.signals.c.subject, t.signals.c.score, t.signals.c.observed_at,
                  t.signals.c.scam_type, t.signals.c.detector).where(
        t.signals.c.score >= min([policy.risk.suspect_min_score, *policy.risk.detector_min_score.values()]))
    if signals_after is not None:
        stmt = stmt.where(t.signals.c.observed_at > signals_after)
    for r in conn.execute(stmt):
        flag = flag_from_signal_row(r, policy)
        if flag:
            flags.append(flag)
    flags.sort(key=lambda f: f.since)
    return flags
