"""What partners tell this node: provenance, the approval queue, and the only door into the firewall.

Every partner indicator is kept with who said it, when, in which bundle, signed or not
(``federation_inbox``). It reaches the core ``indicators`` table — which the firewall trusts — only
as the inbound policy says: automatically when the bundle was signed by a pinned partner whose
trust weight is at least the policy's auto-approval weight, otherwise after an analyst approves it.
Either way it lands with source ``partner:<NAME>`` and its confidence scaled by the trust weight.
Revocations withdraw it; sightings of our own indicators raise their count.

An import never crashes on what a partner sends: each object is used, kept but not acted on, or
rejected with its reason (:class:`ImportReport`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select, update

from forewarn.federation import stix
from forewarn.federation.bulk import insert_rows
from forewarn.federation.policy import PARTNER_SOURCE_PREFIX, NodePolicy, PolicyError
from forewarn.federation.tables import federation_inbox, federation_outbox, federation_sightings
from forewarn.model.indicators import utcnow
from forewarn.store import schema as t
from forewarn.store.db import utc

CONTEXT_TYPES = frozenset({"identity", "marking-definition", "extension-definition", "relationship", "campaign",
                           "note", "report", "language-content", "grouping", "opinion", "observed-data"})
MAX_REJECTIONS_KEPT = 200
CHUNK = 5000


class ImportRejected(ValueError):
    """The whole bundle is refused (bad shape, unknown partner, bad signature); the message says why."""


@dataclass
class ImportReport:
    partner: str
    bundle_id: str | None = None
    signed: bool = False
    objects: int = 0
    indicators: int = 0
    auto_approved: int = 0
    queued: int = 0
    hashed: int = 0
    unmapped: int = 0
    revoked: int = 0
    duplicates: int = 0
    sightings: int = 0
    context: int = 0
    ignored: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, object_id: str, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTIONS_KEPT:
            self.rejected.append((object_id[:100], reason[:300]))

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["rejected"] = [{"id": i, "reason": r} for i, r in self.rejected]
        return data


def bundle_objects(bundle: Any) -> tuple[str | None, list[Any]]:
    """The id and objects of a STIX bundle or a TAXII envelope; :class:`ImportRejected` otherwise."""
    if not isinstance(bundle, dict):
        raise ImportRejected("not a STIX bundle: the top level must be a JSON object")
    if bundle.get("type") == "bundle":
        bid = bundle.get("id")
        if not isinstance(bid, str) or not bid.startswith("bundle--"):
            raise ImportRejected("the bundle has no valid id (bundle--UUID)")
        objs = bundle.get("objects", [])
    elif "objects" in bundle and "type" not in bundle:  # a TAXII envelope
        bid, objs = None, bundle.get("objects")
    else:
        raise ImportRejected(f"not a STIX bundle or TAXII envelope (type {str(bundle.get('type'))[:40]!r})")
    if not isinstance(objs, list):
        raise ImportRejected("'objects' must be a list")
    return bid, objs


def _validate_foreign(obj: dict[str, Any]) -> str | None:
    """Full stix2 validation for objects that did not come signed by a Forewarn node."""
    import stix2
    from stix2.exceptions import STIXError

    try:
        stix2.parse(obj, allow_custom=True)
    except (STIXError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        return f"not valid STIX 2.1: {str(exc).splitlines()[0][:250] if str(exc) else type(exc).__name__}"
    except Exception as exc:  # the stix2 library can fail in many ways on hostile input
        return f"not valid STIX 2.1: {type(exc).__name__}"
    return None


def import_objects(conn: Connection, policy: NodePolicy, partner: str, objects: Sequence[Any], *,
                   signed: bool, bundle_id: str | None = None, now: datetime | None = None) -> ImportReport:
    """Import what ``partner`` sent inside the caller's transaction; see the module docstring."""
    try:
        rules = policy.partner(partner)
    except PolicyError as exc:
        raise ImportRejected(str(exc)) from None
    partner = partner.upper()
    now = now or utcnow()
    report = ImportReport(partner=partner, bundle_id=bundle_id, signed=signed, objects=len(objects))
    auto = signed and policy.auto_approves(partner)
    weight = rules.inbound.trust_weight
    accept = {k.value for k in rules.inbound.accept_types}
    rows: list[dict[str, Any]] = []
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            report.reject("?", "not a STIX object (a JSON object with a 'type')")
            continue
        kind = obj["type"]
        oid = str(obj.get("id", "?"))
        if not signed and kind in ("indicator", "sighting"):
            problem = _validate_foreign(obj)
            if problem:
                report.reject(oid, problem)
                continue
        try:
            if kind == "indicator":
                item = stix.read_indicator(obj, from_forewarn_node=signed)
            elif kind == "sighting":
                _record_sighting(conn, partner, stix.read_sighting(obj), now, report)
                continue
            else:
                stix.check_id(obj)
                if kind in CONTEXT_TYPES or kind in stix.BY_SCO:
                    report.context += 1
                else:
                    report.ignored += 1
                continue
        except stix.Unusable as exc:
            report.reject(oid, str(exc))
            continue
        report.indicators += 1
        rows.append(_inbox_row(item, partner, weight, accept, auto, signed, bundle_id, now, report))
    for start in range(0, len(rows), CHUNK):
        _store_chunk(conn, rows[start:start + CHUNK], partner, rules.inbound.max_retention_days, now, report)
    return report


def _inbox_row(item: stix.Incoming, partner: str, weight: float, accept: set[str], auto: bool, signed: bool,
               bundle_id: str | None, now: datetime, report: ImportReport) -> dict[str, Any]:
    note = item.pattern_note
    if item.type is None:
        status = "unmapped"
    elif item.type.value not in accept:
        status, note = "rejected", f"type {item.type.value} is not accepted from {partner}"
    elif item.revoked:
        status = "revoked"
    elif item.keyed_hash is not None:
        status = "hashed"
    else:
        status = "auto_approved" if auto else "pending"
    return {"partner": partner, "stix_id": item.stix_id, "modified": item.modified,
            "type": item.type.value if item.type else None, "value": item.value, "keyed_hash": item.keyed_hash,
            "confidence": item.confidence, "tlp": item.tlp.value, "scam_type": item.scam_type,
            "valid_from": item.valid_from, "valid_until": item.valid_until, "revoked": item.revoked,
            "onward_sharing": item.onward_sharing, "retention_days": item.retention_days, "signed": signed,
            "bundle_id": bundle_id, "received_at": now, "trust_weight": weight, "status": status,
            "decided_by": "policy:auto" if status == "auto_approved" else None,
            "decided_at": now if status == "auto_approved" else None, "note": note}


def _store_chunk(conn: Connection, rows: list[dict[str, Any]], partner: str, max_retention: int, now: datetime,
                 report: ImportReport) -> None:
    ib = federation_inbox
    keys = [(r["stix_id"], r["modified"]) for r in rows]
    seen = {(s, utc(m)) for s, m in conn.execute(
        select(ib.c.stix_id, ib.c.modified).where(ib.c.partner == partner,
                                                  ib.c.stix_id.in_({k[0] for k in keys})))}
    fresh = [r for r in rows if (r["stix_id"], r["modified"]) not in seen]
    report.duplicates += len(rows) - len(fresh)
    if not fresh:
        return
    insert_rows(conn, ib, fresh, conflict=["partner", "stix_id", "modified"])
    approved = [r for r in fresh if r["status"] == "auto_approved"]
    report.auto_approved += len(approved)
    report.queued += sum(1 for r in fresh if r["status"] == "pending")
    report.hashed += sum(1 for r in fresh if r["status"] == "hashed")
    report.unmapped += sum(1 for r in fresh if r["status"] == "unmapped")
    report.rejected_count += sum(1 for r in fresh if r["status"] == "rejected")
    upsert_core(conn, partner, approved, max_retention, now)
    revoked = [r for r in fresh if r["status"] == "revoked"]
    if revoked:
        report.revoked += _revoke(conn, partner, revoked)


def _core_row(r: dict[str, Any], partner: str, max_retention: int, now: datetime) -> dict[str, Any]:
    retention = min(r.get("retention_days") or max_retention, max_retention)
    expires = now + timedelta(days=retention)
    if r.get("valid_until") is not None:
        expires = min(expires, r["valid_until"])
    first = r.get("valid_from") or now
    return {"type": r["type"], "value": r["value"], "source": f"{PARTNER_SOURCE_PREFIX}{partner}",
            "confidence": max(0, min(100, round(r["confidence"] * r["trust_weight"]))),
            "first_seen": min(first, now), "last_seen": now, "expires_at": expires, "tlp": r["tlp"],
            "scam_type": r.get("scam_type"), "description": f"from partner {partner}: {r['stix_id']}",
            "revoked": False, "sightings": 1}


def upsert_core(conn: Connection, partner: str, rows: Iterable[dict[str, Any]], max_retention: int,
                now: datetime) -> int:
    """Write approved partner indicators into the core table (source ``partner:<NAME>``), in bulk."""
    core = [_core_row(r, partner, max_retention, now) for r in rows]
    if not core:
        return 0
    # the same effect as repository.upsert_indicator, for thousands of rows in one statement
    refreshed = {c: f"excluded.{c}" for c in ("confidence", "last_seen", "expires_at", "tlp", "scam_type",
                                                "description", "revoked")}
    insert_rows(conn, t.indicators, core, conflict=["type", "value", "source"],
                update={**refreshed, "sightings": "indicators.sightings + 1"})
    return len(core)


def _revoke(conn: Connection, partner: str, rows: list[dict[str, Any]]) -> int:
    """A partner withdrew these: mark their core rows revoked (the firewall stops using them)."""
    ib, ind = federation_inbox, t.indicators
    source = f"{PARTNER_SOURCE_PREFIX}{partner}"
    done = 0
    stix_ids = [r["stix_id"] for r in rows]
    conn.execute(update(ib).where(ib.c.partner == partner, ib.c.stix_id.in_(stix_ids)).values(revoked=True))
    pairs = {(r["type"], r["value"]) for r in rows if r["value"]}
    # a revocation may carry no value we can read (e.g. a keyed hash): find earlier versions by id
    for typ, val in conn.execute(select(ib.c.type, ib.c.value).where(
            ib.c.partner == partner, ib.c.stix_id.in_(stix_ids), ib.c.value.is_not(None))):
        pairs.add((typ, val))
    for typ, val in pairs:
        done += int(conn.execute(update(ind).where(ind.c.type == typ, ind.c.value == val, ind.c.source == source)
                                 .values(revoked=True)).rowcount or 0)
    return done


def _record_sighting(conn: Connection, partner: str, s: stix.IncomingSighting, now: datetime,
                     report: ImportReport) -> None:
    """A partner saw one of OUR indicators: keep it and raise the sightings count of our row."""
    ob, fs, ind = federation_outbox, federation_sightings, t.indicators
    target = conn.execute(select(ob.c.indicator_id).where(ob.c.stix_id == s.sighting_of,
                                                          ob.c.kind == "indicator")).first()
    if target is None:
        report.reject(s.stix_id, f"sighting of {s.sighting_of}, which this node never published")
        return
    prev = conn.execute(select(fs.c.id, fs.c.count.label("n")).where(fs.c.stix_id == s.stix_id, fs.c.direction == "in")).first()
    delta = s.count - (prev.n if prev else 0)
    if prev is None:
        conn.execute(fs.insert().values(stix_id=s.stix_id, partner=partner, direction="in", sighting_of=s.sighting_of,
                                        indicator_id=target.indicator_id, count=s.count, first_seen=s.first_seen,
                                        last_seen=s.last_seen, recorded_at=now))
    elif delta:
        conn.execute(update(fs).where(fs.c.id == prev.id).values(count=s.count, last_seen=s.last_seen, recorded_at=now))
    if delta > 0 and target.indicator_id is not None:
        conn.execute(update(ind).where(ind.c.id == target.indicator_id).values(sightings=ind.c.sightings + delta))
    report.sightings += 1


# --- the approval queue -------------------------------------------------------------------------

def list_queue(conn: Connection, partner: str | None = None, status: str = "pending", limit: int = 100,
               offset: int = 0) -> list[dict[str, Any]]:
    ib = federation_inbox
    stmt = select(ib).where(ib.c.status == status)
    if partner:
        stmt = stmt.where(ib.c.partner == partner.upper())
    rows = conn.execute(stmt.order_by(ib.c.id).limit(limit).offset(offset)).mappings()
    return [{k: (utc(v) if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]


def decide(conn: Connection, policy: NodePolicy, ids: Sequence[int], *, approve: bool, actor: str,
           note: str | None = None) -> int:
    """Approve (→ core indicators) or reject pending items; returns how many were decided."""
    ib = federation_inbox
    now = utcnow()
    rows = conn.execute(select(ib).where(ib.c.id.in_(list(ids)), ib.c.status == "pending")).mappings().fetchall()
    by_partner: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_partner.setdefault(r["partner"], []).append(dict(r))
    for partner, items in by_partner.items():
        if approve:
            try:
                max_ret = policy.partner(partner).inbound.max_retention_days
            except PolicyError:
                max_ret = 30  # a partner since removed from the policy: keep its approved items briefly
            upsert_core(conn, partner, [{**r, "valid_from": utc(r["valid_from"]), "valid_until": utc(r["valid_until"])}
                                        for r in items], max_ret, now)
    if rows:
        conn.execute(update(ib).where(ib.c.id.in_([r["id"] for r in rows])).values(
            status="approved" if approve else "rejected", decided_by=actor, decided_at=now,
            note=note if note else ib.c.note))
    return len(rows)


def match_hashed(conn: Connection, key_by_partner: dict[str, bytes], type_: str, values: Iterable[str]) -> dict[str, list[str]]:
    """Which of ``values`` partners flagged under a keyed hash: value -> partners."""
    ib = federation_inbox
    out: dict[str, list[str]] = {}
    for partner, key in key_by_partner.items():
        digests = {stix.keyed_hash(key, type_, v): v for v in values}
        for start in range(0, len(digests), CHUNK):
            part = list(digests)[start:start + CHUNK]
            for (h,) in conn.execute(select(ib.c.keyed_hash).where(
                    and_(ib.c.partner == partner, ib.c.type == type_, ib.c.keyed_hash.in_(part),
                         ib.c.revoked.is_(False))).distinct()):
                out.setdefault(digests[h], []).append(partner)
    return out


def apply_retention(conn: Connection, now: datetime | None = None) -> int:
    """Forget partner assertions past the retention their sender allowed; returns rows removed."""
    ib, ind = federation_inbox, t.indicators
    now = now or utcnow()
    removed = 0
    for (days,) in conn.execute(select(ib.c.retention_days).where(ib.c.retention_days.is_not(None)).distinct()):
        removed += int(conn.execute(ib.delete().where(ib.c.retention_days == days,
                                                      ib.c.received_at < now - timedelta(days=days))).rowcount or 0)
    removed += int(conn.execute(ind.delete().where(ind.c.source.startswith(PARTNER_SOURCE_PREFIX),
                                                   ind.c.expires_at < now)).rowcount or 0)
    return removed


def provenance(conn: Connection, type_: str, value: str) -> list[dict[str, Any]]:
    """Who told us about ``value``, when, and what became of it."""
    ib = federation_inbox
    rows = conn.execute(select(ib.c.partner, ib.c.stix_id, ib.c.modified, ib.c.received_at, ib.c.confidence,
                               ib.c.status, ib.c.signed, ib.c.bundle_id, ib.c.revoked)
                        .where(ib.c.type == type_, ib.c.value == value).order_by(ib.c.received_at)).mappings()
    return [dict(r) for r in rows]

