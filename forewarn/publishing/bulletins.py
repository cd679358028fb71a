"""Scam bulletins: drafted automatically from trending scam types, approved by an analyst, then
published on the portal, over the API and as an Atom feed.

A draft counts, per scam type, the distinct subjects seen in the last ``days`` days in signals,
alerts and citizen reports, against the ``days`` before; the top types become the items, each with
its typical cues (from the signals' ``*.cue.*`` reason codes) and advice, written in the ten
languages of :data:`BULLETIN_LANGUAGES`. Names and advice come from the screening knowledge base
when it is installed, else from this module's own catalog. Bulletins never carry links or personal
data: every text passes :func:`check_publishable` before it is stored.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from forewarn.model.indicators import utcnow
from forewarn.publishing.capabilities import optional
from forewarn.publishing.statistics import SMALL_COUNT
from forewarn.publishing.tables import bulletins as bulletins_table
from forewarn.store import audit
from forewarn.store import schema as t
from forewarn.store.db import utc

BULLETIN_LANGUAGES = ("zh", "en", "th", "vi", "id", "ms", "tl", "my", "km", "lo")
TEXTS_PATH = Path(__file__).parent / "texts" / "bulletin.json"
MAX_ITEMS = 5
MAX_CUES = 3


class BulletinError(ValueError):
    """A bulletin cannot be drafted, found or decided; the message says why."""


class BulletinContentError(BulletinError):
    """A text would publish a link or personal data."""


# --- what may never be published -----------------------------------------------------------------

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_FORBIDDEN: list[tuple[str, re.Pattern[str]]] = [
    ("a link", re.compile(r"(?i)\b(?:https?|ftp)://|\bwww\.|\b[a-z0-9-]{2,63}\.(?:com|net|org|info|xyz|top|app|link|"
                          r"site|online|shop|vip|cc|io|me|co|ly|gl|to|cn|th|vn|my|id|ph|kh|la|mm|sg|hk|tw)\b")),
    ("an e-mail address", re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")),
    ("a phone or account number", re.compile(r"\+?\d(?:[\s().-]?\d){6,}")),
    ("a crypto wallet", re.compile(r"\b(?:0x[0-9a-fA-F]{40}|bc1[0-9a-z]{11,71}|T[1-9A-HJ-NP-Za-km-z]{33})\b")),
]


def check_publishable(text: str) -> None:
    """Raise :class:`BulletinContentError` if ``text`` holds a link, e-mail, number or wallet."""
    scrubbed = _DATE.sub("", text)
    for what, pattern in _FORBIDDEN:
        if pattern.search(scrubbed):
            raise BulletinContentError(f"a bulletin may not contain {what}: {text[:80]!r}")


def publishable(text: str) -> bool:
    try:
        check_publishable(text)
    except BulletinContentError:
        return False
    return True


# --- texts: this module's catalog, the screening knowledge base when present -----------------------

@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, str]]:
    with TEXTS_PATH.open(encoding="utf-8") as fh:
        data: dict[str, dict[str, str]] = json.load(fh)
    return data


@dataclass(frozen=True)
class ScamTypeText:
    names: dict[str, str] = field(default_factory=dict)
    advice: dict[str, str] = field(default_factory=dict)
    cues: tuple[str, ...] = ()


def _as_lang_map(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}
    if isinstance(value, str):
        return {"en": value}
    return {}


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


@lru_cache(maxsize=1)
def knowledge_base() -> dict[str, ScamTypeText]:
    """Names, advice and cues per scam type from ``forewarn.screening.knowledge`` (empty if absent).

    Read once per process: the typology ships with the code and does not change while it runs.
    """
    cap = optional("forewarn.screening.knowledge", "scam_types")
    source = cap.attr("scam_types")
    if not callable(source):
        return {}
    found = source()
    items = found.values() if isinstance(found, dict) else found
    out: dict[str, ScamTypeText] = {}
    for item in items:
        scam_id = _field(item, "id", "scam_type", "scam_type_id", "key")
        if not scam_id:
            continue
        cues = _field(item, "cues", "typical_cues") or ()
        out[str(scam_id)] = ScamTypeText(_as_lang_map(_field(item, "names", "name", "labels")),
                                         _as_lang_map(_field(item, "advice")),
                                         tuple(str(c) for c in cues if isinstance(c, str)))
    return out


def humanise(scam_type: str) -> str:
    return scam_type.replace("_", " ").replace(".", " ").strip().capitalize()


def _name(scam_type: str, lang: str, kb: dict[str, ScamTypeText]) -> str:
    entry = kb.get(scam_type)
    if entry:
        for candidate in (entry.names.get(lang), entry.names.get("en")):
            if candidate and publishable(candidate):
                return candidate
    return humanise(scam_type)


# Cue codes of the screening lexicon that read the same to a citizen share one label.
CUE_ALIASES = {"authority.court": "authority.police", "authority.government": "authority.police",
               "authority.customs": "authority.courier", "refund": "prize", "url.present": "link.action",
               "url.shortener": "link.action", "url.lookalike": "link.action", "url.apk": "remote.app"}


def _cue_text(cue: str, lang: str) -> str | None:
    """The citizen-facing label of a cue code in ``lang``; None for cues without one (left out)."""
    code = CUE_ALIASES.get(cue, cue)
    catalog = texts()
    return catalog.get(lang, {}).get(f"cue.{code}")


# --- counting what is trending ---------------------------------------------------------------------

@dataclass
class ScamTrend:
    scam_type: str
    count: int
    previous: int
    by_source: dict[str, int]
    cues: list[str]


def _cue_of(reason: str) -> str | None:
    if ".cue." in reason:
        return reason.rsplit(".cue.", 1)[1] or None
    if reason.startswith("cue."):
        return reason[4:] or None
    return None


def trending_scam_types(conn: Connection, *, now: datetime | None = None, days: int = 7,
                        top: int = MAX_ITEMS) -> list[ScamTrend]:
    """Scam types by distinct subjects in the last ``days`` days (signals, alerts, citizen reports)."""
    if not 1 <= days <= 90:
        raise BulletinError("a bulletin covers 1 to 90 days")
    end = utc(now) or utcnow()
    start, before = end - timedelta(days=days), end - timedelta(days=2 * days)
    current: dict[str, set[str]] = defaultdict(set)
    previous: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    cues: dict[str, Counter[str]] = defaultdict(Counter)

    def take(kind: str, scam_type: str | None, subject: str, at: datetime | None) -> bool:
        at = utc(at)
        if not scam_type or at is None:
            return False
        if start <= at < end:
            if subject not in current[scam_type]:
                sources[scam_type][kind] += 1
            current[scam_type].add(subject)
            return True
        if before <= at < start:
            previous[scam_type].add(subject)
        return False

    s = t.signals.c
    for row in conn.execute(select(s.scam_type, s.subject, s.observed_at, s.reasons)
                            .where(s.observed_at >= before, s.observed_at < end, s.scam_type.is_not(None))):
        if take("signals", row.scam_type, row.subject, row.observed_at):
            for reason in row.reasons or []:
                cue = _cue_of(str(reason))
                if cue:
                    cues[row.scam_type][cue] += 1
    a = t.alerts.c
    for arow in conn.execute(select(a.scam_type, a.subject, a.created_at)
                            .where(a.created_at >= before, a.created_at < end, a.scam_type.is_not(None),
                                   a.status != "dismissed")):
        take("alerts", arow.scam_type, arow.subject, arow.created_at)
    e = t.events.c
    for erow in conn.execute(select(e.subject, e.occurred_at, e.payload)
                            .where(e.kind == "report", e.occurred_at >= before, e.occurred_at < end)):
        payload = erow.payload or {}
        if payload.get("verdict", "scam") == "scam":
            take("reports", payload.get("scam_type"), erow.subject, erow.occurred_at)
    ranked = sorted(current, key=lambda k: (-len(current[k]), len(previous[k]), k))
    return [ScamTrend(k, len(current[k]), len(previous[k]), dict(sources[k]),
                      [c for c, _ in cues[k].most_common(3 * MAX_CUES)]) for k in ranked[:top]]


# --- drafting -----------------------------------------------------------------------------------------

def _shown(count: int, lang: str) -> str:
    return texts()[lang]["few"] if 0 < count < SMALL_COUNT else str(count)


def compose(trends: list[ScamTrend], start: datetime, end: datetime, days: int,
            kb: dict[str, ScamTypeText] | None = None) -> dict[str, dict[str, Any]]:
    """The bulletin's text in every language; every string passes :func:`check_publishable`."""
    kb = knowledge_base() if kb is None else kb
    content: dict[str, dict[str, Any]] = {}
    for lang in BULLETIN_LANGUAGES:
        frame = texts()[lang]
        items = []
        for trend in trends:
            name = _name(trend.scam_type, lang, kb)
            if trend.previous == 0:
                key = "new"
            elif trend.count > trend.previous * 1.2:
                key = "rising"
            elif trend.count < trend.previous * 0.8:
                key = "falling"
            else:
                key = "steady"
            headline = frame[key].format(name=name, count=_shown(trend.count, lang),
                                         previous=_shown(trend.previous, lang))
            cue_codes = list(trend.cues) or list(kb.get(trend.scam_type, ScamTypeText()).cues)
            cue_lines: list[str] = []
            for code in cue_codes:
                label = _cue_text(code, lang)
                if label and publishable(label) and label not in cue_lines:
                    cue_lines.append(label)
            cue_lines = cue_lines[:MAX_CUES]
            entry = kb.get(trend.scam_type)
            advice = (entry.advice.get(lang) if entry else None) or frame["generic_advice"]
            if not publishable(advice):
                advice = frame["generic_advice"]
            items.append({"scam_type": trend.scam_type, "name": name, "headline": headline,
                          "cues": cue_lines, "advice": advice})
        content[lang] = {
            "title": frame["title"].format(start=start.strftime("%Y-%m-%d"), end=end.strftime("%Y-%m-%d")),
            "intro": frame["intro"].format(days=days), "items": items, "footer": frame["footer"],
            "labels": {"cues": frame["cues"], "advice": frame["advice"]},
        }
    for text in _all_strings(content):
        check_publishable(text)
    return content


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return []


@dataclass
class Bulletin:
    bulletin_id: str
    status: str
    period_start: datetime
    period_end: datetime
    trends: list[dict[str, Any]]
    content: dict[str, dict[str, Any]]
    created_at: datetime
    created_by: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    published_at: datetime | None = None

    def text(self, lang: str) -> dict[str, Any]:
        return self.content.get(lang) or self.content["en"]

    def plain_text(self, lang: str) -> str:
        body = self.text(lang)
        lines = [body["intro"], ""]
        for item in body["items"]:
            lines.append(item["headline"])
            if item["cues"]:
                lines.append(f'{body["labels"]["cues"]}: ' + "; ".join(item["cues"]))
            lines.append(f'{body["labels"]["advice"]}: {item["advice"]}')
            lines.append("")
        lines.append(body["footer"])
        return "\n".join(lines)

    def public_dict(self, lang: str | None = None) -> dict[str, Any]:
        """What the portal and the API show: the text and dates, never who drafted or approved it."""
        langs = [lang] if lang else list(self.content)
        return {"bulletin_id": self.bulletin_id, "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(),
                "published_at": self.published_at.isoformat() if self.published_at else None,
                "content": {code: self.text(code) for code in langs}}


def _bulletin(row: Any) -> Bulletin:
    return Bulletin(row.bulletin_id, row.status, utc(row.period_start), utc(row.period_end),  # type: ignore[arg-type]
                    list(row.trends), dict(row.content), utc(row.created_at), row.created_by,  # type: ignore[arg-type]
                    utc(row.decided_at), row.decided_by, utc(row.published_at))


def draft_bulletin(conn: Connection, actor: str, *, now: datetime | None = None, days: int = 7) -> Bulletin:
    """Draft a bulletin from what is trending; refuses when nothing was reported in the period."""
    end = utc(now) or utcnow()
    trends = trending_scam_types(conn, now=end, days=days)
    if not trends:
        raise BulletinError(f"nothing with a scam type was seen in the last {days} days; no bulletin to draft")
    start = end - timedelta(days=days)
    bulletin = Bulletin(f"bul-{uuid.uuid4().hex[:12]}", "draft", start, end,
                        [{"scam_type": tr.scam_type, "count": tr.count, "previous": tr.previous,
                          "by_source": tr.by_source, "cues": tr.cues} for tr in trends],
                        compose(trends, start, end, days), utcnow(), actor)
    conn.execute(bulletins_table.insert().values(
        bulletin_id=bulletin.bulletin_id, status=bulletin.status, period_start=start, period_end=end,
        trends=bulletin.trends, content=bulletin.content, created_at=bulletin.created_at, created_by=actor))
    audit.append(conn, actor, "bulletin.draft", bulletin.bulletin_id,
                 {"scam_types": [tr.scam_type for tr in trends], "days": days})
    return bulletin


def get_bulletin(conn: Connection, bulletin_id: str) -> Bulletin | None:
    row = conn.execute(select(bulletins_table).where(bulletins_table.c.bulletin_id == bulletin_id)).first()
    return _bulletin(row) if row else None


def list_bulletins(conn: Connection, *, status: str | None = None, limit: int = 50) -> list[Bulletin]:
    b = bulletins_table.c
    stmt = select(bulletins_table)
    if status:
        stmt = stmt.where(b.status == status)
    order = (b.published_at.desc(), b.created_at.desc()) if status == "published" else (b.created_at.desc(),)
    return [_bulletin(r) for r in conn.execute(stmt.order_by(*order).limit(limit))]


def decide_bulletin(conn: Connection, bulletin_id: str, actor: str, approve: bool) -> Bulletin:
    """Approve (which publishes) or reject a draft; only drafts can be decided."""
    found = get_bulletin(conn, bulletin_id)
    if found is None:
        raise BulletinError(f"no bulletin {bulletin_id!r}")
    if found.status != "draft":
        raise BulletinError(f"bulletin {bulletin_id} is {found.status}; only drafts can be approved or rejected")
    if approve:
        for text in _all_strings(found.content):  # a stored draft is checked again before it goes out
            check_publishable(text)
    now = utcnow()
    status = "published" if approve else "rejected"
    conn.execute(update(bulletins_table).where(bulletins_table.c.bulletin_id == bulletin_id,
                                               bulletins_table.c.status == "draft")
                 .values(status=status, decided_at=now, decided_by=actor, published_at=now if approve else None))
    audit.append(conn, actor, "bulletin.approve" if approve else "bulletin.reject", bulletin_id, {})
    decided = get_bulletin(conn, bulletin_id)
    assert decided is not None
    return decided


def withdraw_bulletin(conn: Connection, bulletin_id: str, actor: str) -> Bulletin:
    found = get_bulletin(conn, bulletin_id)
    if found is None or found.status != "published":
        raise BulletinError(f"no published bulletin {bulletin_id!r}")
    conn.execute(update(bulletins_table).where(bulletins_table.c.bulletin_id == bulletin_id)
                 .values(status="withdrawn", decided_at=utcnow(), decided_by=actor))
    audit.append(conn, actor, "bulletin.withdraw", bulletin_id, {})
    return get_bulletin(conn, bulletin_id)  # type: ignore[return-value]


# --- the Atom feed ----------------------------------------------------------------------------------

ATOM_NS = "http://www.w3.org/2005/Atom"


def atom_feed(items: list[Bulletin], *, base_url: str, lang: str, country: str, title: str) -> bytes:
    """An Atom 1.0 feed of published bulletins in one language (the text as the entry content)."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": lang})
    sub(feed, "id", f"urn:forewarn:{country.lower()}:bulletins:{lang}")
    sub(feed, "title", title)
    updated = max((b.published_at for b in items if b.published_at), default=utcnow())
    sub(feed, "updated", updated.isoformat())
    sub(feed, "link", rel="self", href=f"{base}/bulletins.atom?lang={lang}")
    author = sub(feed, "author")
    sub(author, "name", f"Forewarn {country}")
    for bulletin in items:
        body = bulletin.text(lang)
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:forewarn:{country.lower()}:bulletin:{bulletin.bulletin_id}")
        sub(entry, "title", body["title"])
        stamp = (bulletin.published_at or bulletin.created_at).isoformat()
        sub(entry, "updated", stamp)
        sub(entry, "published", stamp)
        sub(entry, "link", rel="alternate", href=f"{base}/bulletins/{bulletin.bulletin_id}?lang={lang}")
        sub(entry, "summary", body["intro"])
        sub(entry, "content", bulletin.plain_text(lang), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
