"""What this node publishes: the outbox the TAXII collections and file exports read from.

:func:`refresh` snapshots new and changed rows of the core ``indicators`` table (including
revocations and new expiry dates) into ``federation_outbox`` with a fresh ``date_added``, so that a
partner paging with ``added_after`` sees every change exactly once, in order. Each partner's view
is cut from the outbox by its outbound policy *in SQL* (:func:`partner_filter`), so pagination stays
correct and nothing a policy forbids is ever read for that partner, let alone sent.

Sightings flow back to the partner whose indicator was seen: values our own detectors also flagged,
and calls and SMS our firewall marked or blocked because a partner listed the caller or sender.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    cast,
    delete,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    update,
)

from forewarn.federation import stix
from forewarn.federation.bulk import gc_paused
from forewarn.federation.policy import PARTNER_SOURCE_PREFIX, NodePolicy, OutboundPolicy, Pseudonymisation
from forewarn.federation.tables import (
    federation_cursors,
    federation_inbox,
    federation_outbox,
    federation_sightings,
)
from forewarn.model.indicators import TLP, IndicatorType, utcnow
from forewarn.store import schema as t
from forewarn.store.db import insert_ignoring_duplicates, utc
from forewarn.store.schema import TS

o = federation_outbox
_refresh_lock = threading.Lock()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7461776173)")


def refresh(conn: Connection, node: str) -> int:
    """Publish new and changed indicators and local sightings of partner indicators (values our own
    detectors also flagged, and traffic our firewall stopped because a partner listed it); returns how many."""
    with _refresh_lock:
        _lock(conn)
        changed = _publish_indicators(conn)
        changed += _publish_local_sightings(conn, node)
        changed += _publish_traffic_sightings(conn, node)
    return changed


def _next_stamp(conn: Connection) -> datetime:
    """A date_added strictly after every one already published, so ``added_after`` never skips a row."""
    now = utcnow()
    last = utc(conn.execute(select(func.max(o.c.date_added))).scalar())
    return max(now, last + timedelta(microseconds=1)) if last else now


def _differs() -> ColumnElement[bool]:
    """An indicator with no outbox row, or whose shared fields changed since it was published."""
    i = t.indicators
    return or_(o.c.seq.is_(None), o.c.confidence != i.c.confidence, o.c.revoked != i.c.revoked,
               o.c.tlp != i.c.tlp, o.c.last_seen != i.c.last_seen,
               o.c.expires_at.is_distinct_from(i.c.expires_at), o.c.scam_type.is_distinct_from(i.c.scam_type),
               o.c.sightings != i.c.sightings)


# Indicators to (re)publish in one refresh: their existing STIX id and creation time if any, their
# position in indicator order, and random bits for a new id.
_changed = Table("fw_outbox_changed", MetaData(),
                 Column("indicator_id", Integer, primary_key=True, autoincrement=False),
                 Column("stix_id", String(80)), Column("created", TS), Column("position", Integer),
                 Column("counter", BigInteger), Column("tail", String(8)), prefixes=["TEMPORARY"])
# The same random counters, sorted: the n-th smallest goes to the n-th indicator.
_counters = Table("fw_outbox_counters", MetaData(),
                  Column("position", Integer, primary_key=True, autoincrement=False),
                  Column("counter", BigInteger), prefixes=["TEMPORARY"])
COUNTER_BITS = 40


def _random_bits(dialect: str, bits: int) -> ColumnElement[int]:
    """A uniformly random integer of ``bits`` bits per row, made by the database."""
    if dialect == "postgresql":
        return cast(func.floor(func.random() * (1 << bits)), BigInteger)
    return func.random().op("&")((1 << bits) - 1)


def _hex(dialect: str, value: ColumnElement[int], digits: int) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.lpad(func.to_hex(value), digits, "0", type_=String)
    return func.printf(f"%0{digits}x", value, type_=String)


def _indicator_id(millis_hex: str, counter_hex: ColumnElement[str], tail: ColumnElement[str]) -> ColumnElement[str]:
    """``indicator--`` and a time-ordered UUID (RFC 9562 version 7, which STIX 2.1 and the stix2
    library accept): 48 bits of Unix milliseconds, a 40-bit counter, 32 random bits.

    Why not version 4: partners keep indicators under unique indexes on the STIX id (our outbox too);
    at a million rows, random ids scatter every insert over the whole index and cost about three times
    as much. Ids that grow in the order indicators are served are appended instead. The counter is not
    a row number, whose gaps would count the rows a partner was not shown: each refresh draws one
    random 40-bit value per indicator and hands them out in sorted order (ties are broken by the
    random tail).
    """
    def part(text: ColumnElement[str] | str, start: int, length: int) -> ColumnElement[str]:
        return func.substr(text, start, length, type_=String)

    return ("indicator--" + literal(millis_hex[:8], String) + "-" + literal(millis_hex[8:12], String)
            + "-7" + part(counter_hex, 1, 3) + "-8" + part(counter_hex, 4, 3)
            + "-" + part(counter_hex, 7, 4) + tail)


def _publish_indicators(conn: Connection) -> int:
    """Snapshot new and changed indicators into the outbox, entirely inside the database.

    A changed indicator keeps its STIX id and ``created`` and moves to the end of the outbox (a new
    ``seq`` and ``date_added``), so partners paging by ``added_after`` see the new version once.
    """
    i, c, k = t.indicators, _changed, _counters
    dialect = conn.dialect.name
    for table in (c, k):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    conn.execute(c.insert().from_select(
        ["indicator_id", "stix_id", "created", "position", "counter", "tail"],
        select(i.c.id, o.c.stix_id, o.c.created, func.row_number().over(order_by=i.c.id),
               _random_bits(dialect, COUNTER_BITS), _hex(dialect, _random_bits(dialect, 32), 8))
        .select_from(i.outerjoin(o, o.c.indicator_id == i.c.id)).where(_differs())))
    changed = int(conn.execute(select(func.count()).select_from(c)).scalar_one())
    if changed:
        conn.execute(k.insert().from_select(["position", "counter"],
                                            select(func.row_number().over(order_by=c.c.counter), c.c.counter)))
        now = _next_stamp(conn)
        conn.execute(delete(o).where(o.c.indicator_id.in_(select(c.c.indicator_id)
                                                          .where(c.c.stix_id.is_not(None)))))
        stamp = literal(now, TS)
        new_id = _indicator_id(f"{int(now.timestamp() * 1000):012x}", _hex(dialect, k.c.counter, 10), c.c.tail)
        conn.execute(o.insert().from_select(
            ["kind", "stix_id", "indicator_id", "partner", "type", "value", "confidence", "tlp", "source",
             "scam_type", "first_seen", "last_seen", "expires_at", "revoked", "sightings", "created", "modified",
             "date_added"],
            select(literal("indicator"), func.coalesce(c.c.stix_id, new_id),
                   i.c.id, null(), i.c.type, i.c.value, i.c.confidence, i.c.tlp, i.c.source, i.c.scam_type,
                   i.c.first_seen, i.c.last_seen, i.c.expires_at, i.c.revoked, i.c.sightings,
                   func.coalesce(c.c.created, stamp), stamp, stamp)
            .select_from(c.join(i, i.c.id == c.c.indicator_id).join(k, k.c.position == c.c.position))
            .order_by(c.c.indicator_id)))
    for table in (k, c):
        table.drop(conn)
    return changed


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


# The firewall's decision log is read once per decision: the last decision_id turned into sightings.
_TRAFFIC_CURSOR = ("_firewall", "sighting")  # never a partner name (those are upper-case codes)


def _publish_traffic_sightings(conn: Connection, node: str) -> int:
    """Calls and SMS the firewall marked or blocked because a partner asserted the caller or sender
    (reason ``reputation.partner``) are sightings of that partner's indicator: each new decision
    counts once, reported through :func:`report_sighting` to every partner who asserted the value."""
    from forewarn.firewall.tables import firewall_decisions as fd  # read only: the firewall owns the log

    c = federation_cursors
    where = (c.c.partner == _TRAFFIC_CURSOR[0], c.c.direction == _TRAFFIC_CURSOR[1])
    mark = conn.execute(select(c.c.cursor).where(*where)).scalar()
    after = int(mark) if mark and mark.isdigit() else 0
    top = conn.execute(select(func.max(fd.c.decision_id))).scalar()
    if top is None or top <= after:
        return 0
    hits = conn.execute(
        select(fd.c.source, func.count(), func.min(fd.c.decided_at), func.max(fd.c.decided_at))
        .where(fd.c.decision_id > after, fd.c.decision_id <= top,
               cast(fd.c.reasons, String).like('%"reputation.partner"%'))
        .group_by(fd.c.source)).fetchall()
    told = 0
    for source, n, _first, last in hits:
        kind = IndicatorType.PHONE if source.startswith("+") else IndicatorType.SENDER_ID
        told += report_sighting(conn, node, kind, source, int(n), seen_at=utc(last))
    stamp = {"cursor": str(top), "updated_at": utcnow()}
    if not insert_ignoring_duplicates(conn, c, [{"partner": _TRAFFIC_CURSOR[0], "direction": _TRAFFIC_CURSOR[1],
                                                 **stamp}], ["partner", "direction"]):
        conn.execute(update(c).where(*where).values(**stamp))
    return told


def report_sighting(conn: Connection, node: str, type_: IndicatorType | str, value: str, count: int = 1,
                    seen_at: datetime | None = None) -> int:
    """Tell every partner who asserted ``value`` that this node saw it ``count`` more times.

    :func:`refresh` calls it for the firewall's decisions on partner-listed callers and senders
    (:func:`_publish_traffic_sightings`); returns how many partners will hear.
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
    added: list[str] = field(default_factory=list)  # date_added of each object (microseconds)

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """The TAXII manifest entries of the page's objects (built only when asked for)."""
        return [{"id": obj["id"], "date_added": added,
                 "version": obj.get("modified", obj.get("created", added[:23] + "Z")),
                 "media_type": "application/stix+json;version=2.1"} for obj, added in zip(self.objects, self.added,
                                                                                           strict=True)]


def public_rules() -> OutboundPolicy:
    """What a bundle for no particular partner may hold: TLP:CLEAR, raw, only our own findings."""
    return OutboundPolicy(share=True, indicator_types=list(IndicatorType), max_tlp=TLP.CLEAR, min_confidence=0,
                          include_sightings=False, share_partner_derived=False, push=False, psi=False)


def rules_for(policy: NodePolicy, partner: str | None) -> OutboundPolicy:
    return policy.partner(partner).outbound if partner else public_rules()


class View:
    """How one partner sees outbox rows: pseudonymisation per type, observables, the STIX renderer."""

    def __init__(self, node: str, rules: OutboundPolicy, hash_key: bytes | None) -> None:
        self.rules = rules
        self.how = {k.value: rules.how(k) for k in IndicatorType}
        self.observables = rules.include_observables
        self.hash_key = hash_key
        self.renderer = stix.IndicatorRenderer(node=node, retention_days=rules.retention_days,
                                               onward_sharing=not rules.no_onward_sharing, hash_key=hash_key)

    def render(self, row: Any) -> list[dict[str, Any]]:
        """STIX objects for one outbox row selected as :data:`PAGE_COLUMNS` (raw or keyed hash; observable
        or not). Timestamps may come as the store's text (SQLite) or as datetimes (PostgreSQL)."""
        (_, kind, stix_id, type_, value, confidence, tlp, scam_type, first_seen, last_seen, expires_at, revoked,
         sightings, created, modified, _, payload) = row
        if kind != "indicator":
            return [payload]
        how = self.how[type_]
        if how is Pseudonymisation.PSI_ONLY:  # partner_filter already excludes these; never render them
            return []
        raw = how is Pseudonymisation.RAW
        if not raw and self.hash_key is None:
            return []  # no pairwise key: a keyed hash cannot be made, and raw is not allowed
        stamp = stix.stored_ts
        created = stamp(created) or stix.ts(utcnow())
        return self.renderer.objects(
            stix_id, type_, value, confidence, tlp, scam_type, stamp(first_seen) or created,
            stamp(last_seen) or created, stamp(expires_at), bool(revoked), sightings, created,
            stamp(modified) or created, raw=raw, observable=self.observables)


def _as_text(column: Any) -> Any:
    # the timestamp as the driver returns it: SQLite's text as is (no datetime built), PostgreSQL's datetime
    return type_coerce(column, String).label(column.name)


# What View.render reads of an outbox row, in this order.
PAGE_COLUMNS = [o.c.seq, o.c.kind, o.c.stix_id, o.c.type, o.c.value, o.c.confidence, o.c.tlp, o.c.scam_type,
                 _as_text(o.c.first_seen), _as_text(o.c.last_seen), _as_text(o.c.expires_at), o.c.revoked,
                 o.c.sightings, _as_text(o.c.created), _as_text(o.c.modified), _as_text(o.c.date_added),
                 o.c.payload]


def _stored_datetime(value: str | datetime | None) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value)


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
    view = View(policy.node, rules, hash_key)
    objects: list[dict[str, Any]] = []
    added: list[str] = []
    with gc_paused():
        rows = conn.execute(select(*PAGE_COLUMNS).where(and_(true(), *cond)).order_by(o.c.seq)
                            .limit(rows_wanted + 1)).fetchall()
        more = len(rows) > rows_wanted
        rows = rows[:rows_wanted]
        for r in rows:
            stamp = stix.stored_ts(r.date_added, precise=True) or stix.ts_precise(utcnow())
            for obj in view.render(r):
                if match_types and obj["type"] not in match_types:
                    continue
                objects.append(obj)
                added.append(stamp)
    return Page(objects, more, str(rows[-1].seq) if more and rows else None,
                _stored_datetime(rows[0].date_added) if rows else None,
                _stored_datetime(rows[-1].date_added) if rows else None, added)


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
    rows = conn.execute(select(*PAGE_COLUMNS).where(partner_filter(rules, partner), o.c.stix_id == object_id)).fetchall()
    view = View(policy.node, rules, hash_key)
    out: list[dict[str, Any]] = []
    for r in rows:
        out.extend(x for x in view.render(r) if x["id"] == object_id)
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
