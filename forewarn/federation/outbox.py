"""What this node publishes: the outbox the TAXII collections and file exports read from.

:func:`refresh` snapshots new and changed rows of the core ``indicators`` table (including
revocations and new expiry dates) into ``federation_outbox`` with a fresh ``date_added``, so that a
partner paging with ``added_after`` sees every change exactly once, in order. Each partner's view
is cut from the outbox by its outbound policy *in SQL* (:func:`partner_filter`), so pagination stays
correct and nothing a policy forbids is ever read for that partner, let alone sent.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)

from forewarn.federation import stix
from forewarn.federation.bulk import insert_rows
from forewarn.federation.policy import PARTNER_SOURCE_PREFIX, NodePolicy, OutboundPolicy, Pseudonymisation
from forewarn.federation.tables import federation_inbox, federation_outbox, federation_sightings
from forewarn.model.indicators import TLP, IndicatorType, utcnow
from forewarn.store import schema as t
from forewarn.store.db import utc

o = federation_outbox
_refresh_lock = threading.Lock()
REFRESH_CHUNK = 50_000


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7461776173)")


def refresh(conn: Connection, node: str) -> int:
    """Publish new and changed indicators and local sightings of partner indicators; returns how many."""
    with _refresh_lock:
        _lock(conn)
        changed = _publish_indicators(conn)
        changed += _publish_local_sightings(conn, node)
    return changed


def _next_stamp(conn: Connection) -> datetime:
    """A date_added strictly after every one already published, so ``added_after`` never skips a row."""
    now = utcnow()
    last = utc(conn.execute(select(func.max(o.c.date_added))).scalar())
    return max(now, last + timedelta(microseconds=1)) if last else now


def _changed_indicators(conn: Connection) -> Any:
    i = t.indicators
    differs = or_(o.c.seq.is_(None), o.c.confidence != i.c.confidence, o.c.revoked != i.c.revoked,
                  o.c.tlp != i.c.tlp, o.c.last_seen != i.c.last_seen,
                  o.c.expires_at.is_distinct_from(i.c.expires_at), o.c.scam_type.is_distinct_from(i.c.scam_type),
                  o.c.sightings != i.c.sightings)
    return conn.execute(
        select(i.c.id, i.c.type, i.c.value, i.c.confidence, i.c.tlp, i.c.source, i.c.scam_type, i.c.first_seen,
               i.c.last_seen, i.c.expires_at, i.c.revoked, i.c.sightings, o.c.stix_id, o.c.created)
        .select_from(i.outerjoin(o, o.c.indicator_id == i.c.id)).where(differs).order_by(i.c.id)).fetchall()


def _publish_indicators(conn: Connection) -> int:
    rows = _changed_indicators(conn)
    if not rows:
        return 0
    now = _next_stamp(conn)
    total = 0
    for start in range(0, len(rows), REFRESH_CHUNK):
        chunk = rows[start:start + REFRESH_CHUNK]
        conn.execute(delete(o).where(o.c.indicator_id.in_([r.id for r in chunk if r.stix_id is not None])))
        insert_rows(conn, o, [{
            "kind": "indicator", "stix_id": r.stix_id or f"indicator--{uuid.uuid4()}", "indicator_id": r.id,
            "partner": None, "type": r.type, "value": r.value, "confidence": r.confidence, "tlp": r.tlp,
            "source": r.source, "scam_type": r.scam_type, "first_seen": r.first_seen, "last_seen": r.last_seen,
            "expires_at": r.expires_at, "revoked": bool(r.revoked), "sightings": r.sightings,
            "created": utc(r.created) or now, "modified": now, "date_added": now} for r in chunk])
        total += len(chunk)
    return total


def _publish_local_sightings(conn: Connection, node: str) -> int:
    """A value a partner told us about that our own detectors also flagged is a sighting for that partner."""
    local, inbox = t.indicators.alias("local_ind"), federation_inbox
    rows = conn.execute(
        select(inbox.c.partner, inbox.c.stix_id, local.c.id, local.c.sightings, local.c.first_seen, local.c.last_seen)
        .select_from(inbox.join(local, and_(local.c.type == inbox.c.type, local.c.value == inbox.c.value)))
        .where(inbox.c.status.in_(("approved", "auto_approved")),
               ~local.c.source.startswith(PARTNER_SOURCE_PREFIX), local.c.revoked.is_(False))
        .distinct()).fetchall()
    published = 0
    for r in rows:
        published += publish_sighting(conn, node, partner=r.partner, sighting_of=r.stix_id, indicator_id=r.id,
                                      count=r.sightings, first_seen=utc(r.first_seen), last_seen=utc(r.last_seen))
    return published


def publish_sighting(conn: Connection, node: str, *, partner: str, sighting_of: str, indicator_id: int | None,
                     count: int, first_seen: datetime | None, last_seen: datetime | None) -> int:
    """Queue (or update) a sighting of ``partner``'s indicator for that partner; returns 1 if it changed."""
    sid = stix.stix_id("sighting", node, sighting_of, indicator_id or "")
    s = federation_sightings
    now = _next_stamp(conn)
    first_seen, last_seen = first_seen or now, last_seen or now
    prev = conn.execute(select(s.c.id, s.c.count.label("n")).where(s.c.stix_id == sid, s.c.direction == "out")).first()
    if prev is not None and prev.n == count:
        return 0
    if prev is None:
        conn.execute(s.insert().values(stix_id=sid, partner=partner, direction="out", sighting_of=sighting_of,
                                       indicator_id=indicator_id, count=count, first_seen=first_seen,
                                       last_seen=last_seen, recorded_at=now))
    else:
        conn.execute(update(s).where(s.c.id == prev.id).values(count=count, last_seen=last_seen, recorded_at=now))
    payload = stix.sighting_object(sighting_id=sid, node=node, sighting_of=sighting_of, count=count,
                                   first_seen=first_seen, last_seen=last_seen, created=now)
    conn.execute(delete(o).where(o.c.stix_id == sid))
    conn.execute(o.insert().values(kind="sighting", stix_id=sid, partner=partner, revoked=False, sightings=count,
                                   created=now, modified=now, date_added=now, payload=payload))
    return 1


def report_sighting(conn: Connection, node: str, type_: IndicatorType | str, value: str, count: int = 1,
                    seen_at: datetime | None = None) -> int:
    """Tell every partner who asserted ``value`` that this node saw it ``count`` more times.

    Called by whatever observes traffic (the firewall, screening); returns how many partners will hear.
    """
    s = federation_sightings
    kind = IndicatorType(type_).value
    told = 0
    for row in conn.execute(select(federation_inbox.c.partner, federation_inbox.c.stix_id)
                            .where(federation_inbox.c.type == kind, federation_inbox.c.value == value,
                                   federation_inbox.c.status.in_(("approved", "auto_approved"))).distinct()):
        sid = stix.stix_id("sighting", node, row.stix_id, "")
        prev = conn.execute(select(s.c.count.label("n"), s.c.first_seen).where(s.c.stix_id == sid, s.c.direction == "out")).first()
        total = (prev.n if prev else 0) + count
        told += publish_sighting(conn, node, partner=row.partner, sighting_of=row.stix_id, indicator_id=None,
                                 count=total, first_seen=utc(prev.first_seen) if prev else seen_at,
                                 last_seen=seen_at or utcnow())
    return told


# --- a partner's view ---------------------------------------------------------------------------

def partner_filter(rules: OutboundPolicy, partner: str | None) -> ColumnElement[bool]:
    """The SQL condition for the outbox rows ``partner`` may receive as STIX objects."""
    types = [k.value for k in rules.taxii_types()]
    tlps = [x.value for x in rules.allowed_tlps()]
    if not types or not tlps:
        indicators: ColumnElement[bool] = false()
    else:
        indicators = and_(o.c.kind == "indicator", o.c.type.in_(types), o.c.tlp.in_(tlps),
                          o.c.confidence >= rules.min_confidence)
        derived = o.c.source.startswith(PARTNER_SOURCE_PREFIX)
        if rules.share_partner_derived:
            # relay only what no partner forbade sharing onward
            inbox = federation_inbox
            forbidden = exists().where(inbox.c.type == o.c.type, inbox.c.value == o.c.value,
                                       inbox.c.onward_sharing.is_(False))
            indicators = and_(indicators, or_(~derived, ~forbidden))
        else:
            indicators = and_(indicators, ~derived)
    if rules.share and rules.include_sightings and partner:
        sightings: ColumnElement[bool] = and_(o.c.kind == "sighting", o.c.partner == partner)
    else:
        sightings = false()
    return or_(indicators, sightings)


@dataclass
class Page:
    objects: list[dict[str, Any]]
    more: bool
    next: str | None
    first_added: datetime | None
    last_added: datetime | None
    manifest: list[dict[str, Any]]


def public_rules() -> OutboundPolicy:
    """What a bundle for no particular partner may hold: TLP:CLEAR, raw, only our own findings."""
    return OutboundPolicy(share=True, indicator_types=list(IndicatorType), max_tlp=TLP.CLEAR, min_confidence=0,
                          include_sightings=False, share_partner_derived=False, push=False, psi=False)


def rules_for(policy: NodePolicy, partner: str | None) -> OutboundPolicy:
    return policy.partner(partner).outbound if partner else public_rules()


def page(conn: Connection, policy: NodePolicy, partner: str | None, *, hash_key: bytes | None,
         added_after: datetime | None = None, after_seq: int = 0, limit: int = 1000,
         match_ids: list[str] | None = None, match_types: list[str] | None = None) -> Page:
    """One page of what ``partner`` may see, in ``date_added`` order, ready to serve."""
    rules = rules_for(policy, partner)
    cond = [partner_filter(rules, partner), o.c.seq > after_seq]
    if added_after is not None:
        cond.append(o.c.date_added > added_after)
    if match_ids:
        cond.append(o.c.stix_id.in_(match_ids))
    if match_types:
        wanted = set(match_types)
        kinds = [k for k in ("indicator", "sighting") if k in wanted]
        if rules.include_observables and wanted & {ob.sco_type for ob in stix.OBSERVABLES.values()}:
            kinds.append("indicator")
        cond.append(o.c.kind.in_(kinds) if kinds else literal(False))
    per_row = 2 if rules.include_observables else 1
    rows_wanted = max(1, limit // per_row)
    rows = conn.execute(select(o).where(and_(true(), *cond)).order_by(o.c.seq).limit(rows_wanted + 1)).fetchall()
    more = len(rows) > rows_wanted
    rows = rows[:rows_wanted]
    objects: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    for r in rows:
        for obj in render(r, policy.node, rules, hash_key):
            if match_types and obj["type"] not in match_types:
                continue
            objects.append(obj)
            manifest.append({"id": obj["id"], "date_added": stix.ts_precise(utc(r.date_added) or utcnow()),
                             "version": obj.get("modified", obj.get("created", stix.ts(utc(r.date_added) or utcnow()))),
                             "media_type": "application/stix+json;version=2.1"})
    return Page(objects, more, str(rows[-1].seq) if more and rows else None,
                utc(rows[0].date_added) if rows else None, utc(rows[-1].date_added) if rows else None, manifest)


def render(row: Any, node: str, rules: OutboundPolicy, hash_key: bytes | None) -> list[dict[str, Any]]:
    """STIX objects for one outbox row as ``rules`` allow them (raw or keyed hash; observable or not)."""
    if row.kind != "indicator":
        return [row.payload]
    how = rules.how(row.type)
    if how is Pseudonymisation.PSI_ONLY:  # partner_filter already excludes these; never render them
        return []
    raw = how is Pseudonymisation.RAW
    if not raw and hash_key is None:
        return []  # no pairwise key: a keyed hash cannot be made, and raw is not allowed
    item = stix.Outgoing(stix_id=row.stix_id, type=row.type, value=row.value, confidence=row.confidence,
                         tlp=row.tlp, scam_type=row.scam_type, first_seen=utc(row.first_seen) or utcnow(),
                         last_seen=utc(row.last_seen) or utcnow(), expires_at=utc(row.expires_at),
                         revoked=bool(row.revoked), sightings=row.sightings, created=utc(row.created) or utcnow(),
                         modified=utc(row.modified) or utcnow())
    ind = stix.indicator_object(item, node=node, raw=raw, hash_key=hash_key, retention_days=rules.retention_days,
                                onward_sharing=not rules.no_onward_sharing)
    if not rules.include_observables:
        return [ind]
    kind = IndicatorType(row.type)
    sco = stix.observable_for(kind, row.value if raw else None,
                              None if raw else stix.keyed_hash(hash_key or b"", kind, row.value))
    return [ind, sco]


def iterate(conn: Connection, policy: NodePolicy, partner: str | None, *, hash_key: bytes | None,
            added_after: datetime | None = None, page_size: int = 5000) -> Iterator[Page]:
    after = 0
    while True:
        pg = page(conn, policy, partner, hash_key=hash_key, added_after=added_after, after_seq=after, limit=page_size)
        yield pg
        if not pg.more or pg.next is None:
            return
        after = int(pg.next)


def get_versions(conn: Connection, policy: NodePolicy, partner: str | None, object_id: str,
                 hash_key: bytes | None) -> list[dict[str, Any]]:
    """The object if ``partner`` may see it (only the latest version is kept)."""
    rules = rules_for(policy, partner)
    rows = conn.execute(select(o).where(partner_filter(rules, partner), o.c.stix_id == object_id)).fetchall()
    out: list[dict[str, Any]] = []
    for r in rows:
        out.extend(x for x in render(r, policy.node, rules, hash_key) if x["id"] == object_id)
    return out


def export_bundle(conn: Connection, policy: NodePolicy, partner: str | None, *, hash_key: bytes | None,
                  with_context: bool = True) -> dict[str, Any]:
    """A complete bundle of what ``partner`` may see: markings, identities, extension definitions,
    indicators and observables, sightings, a campaign per scam type with its notes, and a report."""
    refresh(conn, policy.node)
    objects: list[dict[str, Any]] = []
    for pg in iterate(conn, policy, partner, hash_key=hash_key, page_size=20_000):
        objects.extend(pg.objects)
    now = utcnow()
    context: list[dict[str, Any]] = []
    if with_context:
        used_tlps = {stix.MARKING_TLP[m] for obj in objects for m in obj.get("object_marking_refs", [])}
        context = [stix.project_identity(), stix.node_identity(policy.node, policy.display_name),
                   *stix.extension_definitions(), *[stix.tlp_marking(x) for x in TLP if x in used_tlps]]
        by_scam: dict[str, list[str]] = defaultdict(list)
        for obj in objects:
            if obj["type"] == "indicator" and obj.get("labels"):
                by_scam[obj["labels"][0]].append(obj["id"])
        objects.extend(stix.campaign_objects(policy.node, by_scam, now, stix.scam_type_knowledge()))
        objects.append(stix.report_object(policy.node, partner, [x["id"] for x in objects], now))
    return stix.make_bundle(context + objects)


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(o.c.kind, func.count()).group_by(o.c.kind)).fetchall()
    return {k: int(n) for k, n in rows}
