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
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, func, select, tuple_, update

from forewarn.federation import stix
from forewarn.federation.bulk import gc_paused, insert_tuples, timestamp_param
from forewarn.federation.policy import PARTNER_SOURCE_PREFIX, NodePolicy, PolicyError
from forewarn.federation.signing import forget_older_than
from forewarn.federation.tables import federation_inbox, federation_outbox, federation_sightings
from forewarn.model.indicators import TLP, IndicatorType, utcnow
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


@dataclass
class PreparedImport:
    """What :func:`prepare_import` read from a partner's objects, ready for :func:`apply_import`.

    Preparing touches no database, so a sync prepares the next page while the previous one is written.
    """

    report: ImportReport
    max_retention_days: int
    now: datetime
    rows: list[InboxRow]
    sightings: list[stix.IncomingSighting]


class InboxRow(NamedTuple):
    """One partner indicator as ``federation_inbox`` keeps it (columns in table order)."""

    partner: str
    stix_id: str
    modified: datetime
    type: str | None
    value: str | None
    keyed_hash: str | None
    confidence: int
    tlp: str
    scam_type: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    revoked: bool
    onward_sharing: bool
    retention_days: int | None
    signed: bool
    bundle_id: str | None
    received_at: datetime
    trust_weight: float
    status: str
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


INBOX_COLUMNS = InboxRow._fields
_TLP_TEXT = {level: level.value for level in TLP}  # enum .value is a slow property; a sync reads millions
_TYPE_TEXT = {kind: kind.value for kind in IndicatorType}


def import_objects(conn: Connection, policy: NodePolicy, partner: str, objects: Sequence[Any], *,
                   signed: bool, bundle_id: str | None = None, now: datetime | None = None) -> ImportReport:
    """Import what ``partner`` sent inside the caller's transaction; see the module docstring."""
    return apply_import(conn, prepare_import(policy, partner, objects, signed=signed, bundle_id=bundle_id, now=now))


def prepare_import(policy: NodePolicy, partner: str, objects: Sequence[Any], *, signed: bool,
                   bundle_id: str | None = None, now: datetime | None = None) -> PreparedImport:
    """Validate and classify ``partner``'s objects under the inbound policy (no database needed)."""
    try:
        rules = policy.partner(partner)
    except PolicyError as exc:
        raise ImportRejected(str(exc)) from None
    partner = partner.upper()
    now = now or utcnow()
    report = ImportReport(partner=partner, bundle_id=bundle_id, signed=signed, objects=len(objects))
    prepared = PreparedImport(report, rules.inbound.max_retention_days, now, [], [])
    auto = signed and policy.auto_approves(partner)
    weight = rules.inbound.trust_weight
    accept = {k.value for k in rules.inbound.accept_types}
    context_types = CONTEXT_TYPES | stix.BY_SCO.keys()
    with gc_paused():
        for obj in objects:
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                report.reject("?", "not a STIX object (a JSON object with a 'type')")
                continue
            kind = obj["type"]
            if not signed and kind in ("indicator", "sighting"):
                problem = _validate_foreign(obj)
                if problem:
                    report.reject(str(obj.get("id", "?")), problem)
                    continue
            try:
                if kind == "indicator":
                    item = stix.read_indicator(obj, from_forewarn_node=signed)
                elif kind == "sighting":
                    prepared.sightings.append(stix.read_sighting(obj))
                    continue
                else:
                    stix.check_id(obj)
                    if kind in context_types:
                        report.context += 1
                    else:
                        report.ignored += 1
                    continue
            except stix.Unusable as exc:
                report.reject(str(obj.get("id", "?")), str(exc))
                continue
            report.indicators += 1
            prepared.rows.append(_inbox_row(item, partner, weight, accept, auto, signed, bundle_id, now))
    return prepared


def apply_import(conn: Connection, prepared: PreparedImport) -> ImportReport:
    """Write a prepared import inside the caller's transaction: provenance rows, then what the policy lets
    reach the core indicators table; objects already received (same id and version) change nothing."""
    report = prepared.report
    for sighting in prepared.sightings:
        _record_sighting(conn, report.partner, sighting, prepared.now, report)
    with gc_paused():
        unique: dict[tuple[str, datetime], InboxRow] = {}
        for row in prepared.rows:  # the same version twice in one batch is one assertion
            unique.setdefault((row.stix_id, row.modified), row)
        report.duplicates += len(prepared.rows) - len(unique)
        rows = list(unique.values())
        for start in range(0, len(rows), CHUNK):
            _store_chunk(conn, rows[start:start + CHUNK], report.partner, prepared.max_retention_days,
                         prepared.now, report)
    return report


def _inbox_row(item: stix.Incoming, partner: str, weight: float, accept: set[str], auto: bool, signed: bool,
               bundle_id: str | None, now: datetime) -> InboxRow:
    note = item.pattern_note
    kind = _TYPE_TEXT[item.type] if item.type is not None else None
    if kind is None:
        status = "unmapped"
    elif kind not in accept:
        status, note = "rejected", f"type {kind} is not accepted from {partner}"
    elif item.revoked:
        status = "revoked"
    elif item.keyed_hash is not None:
        status = "hashed"
    else:
        status = "auto_approved" if auto else "pending"
    approved = status == "auto_approved"
    return InboxRow(partner, item.stix_id, item.modified, kind, item.value, item.keyed_hash, item.confidence,
                    _TLP_TEXT[item.tlp], item.scam_type, item.valid_from, item.valid_until, item.revoked,
                    item.onward_sharing, item.retention_days, signed, bundle_id, now, weight, status,
                    "policy:auto" if approved else None, now if approved else None, note)


def _store_chunk(conn: Connection, rows: list[InboxRow], partner: str, max_retention: int, now: datetime,
                 report: ImportReport) -> None:
    ib = federation_inbox
    stamp = timestamp_param(conn)
    seen = _received(conn, partner, list({r.stix_id for r in rows}))
    if seen:  # (stix_id, modified) as the driver stores it
        fresh = [r for r in rows if (r.stix_id, stamp(r.modified) if stamp else r.modified) not in seen]
    else:
        fresh = rows
    report.duplicates += len(rows) - len(fresh)
    if not fresh:
        return
    params: list[tuple[Any, ...]] = fresh  # type: ignore[assignment]
    if stamp is not None:
        now_param = stamp(now)  # received_at, and decided_at when the policy decided, is the import's time
        params = [(r.partner, r.stix_id, stamp(r.modified), r.type, r.value, r.keyed_hash, r.confidence, r.tlp,
                   r.scam_type, stamp(r.valid_from), stamp(r.valid_until), r.revoked, r.onward_sharing,
                   r.retention_days, r.signed, r.bundle_id,
                   now_param if r.received_at is now else stamp(r.received_at), r.trust_weight, r.status,
                   r.decided_by, now_param if r.decided_at is now else stamp(r.decided_at), r.note) for r in fresh]
    insert_tuples(conn, ib, INBOX_COLUMNS, params, conflict=["partner", "stix_id", "modified"])
    by_status: dict[str, int] = {}
    for r in fresh:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    report.auto_approved += by_status.get("auto_approved", 0)
    report.queued += by_status.get("pending", 0)
    report.hashed += by_status.get("hashed", 0)
    report.unmapped += by_status.get("unmapped", 0)
    report.rejected_count += by_status.get("rejected", 0)
    if by_status.get("auto_approved"):
        upsert_core(conn, partner, [r for r in fresh if r.status == "auto_approved"], max_retention, now)
    if by_status.get("revoked"):
        report.revoked += _revoke(conn, partner, [r for r in fresh if r.status == "revoked"])


def _received(conn: Connection, partner: str, stix_ids: list[str]) -> set[tuple[str, Any]]:
    """Versions of ``stix_ids`` already received from ``partner``, with ``modified`` in driver form.

    A plain driver query: SQLAlchemy would build and process a bound parameter per id."""
    ph = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = (f"SELECT stix_id, modified FROM {federation_inbox.name} WHERE partner = {ph} "
           f"AND stix_id IN ({', '.join([ph] * len(stix_ids))})")
    return {(stix_id, modified) for stix_id, modified in conn.exec_driver_sql(sql, (partner, *stix_ids))}


CORE_COLUMNS = ("type", "value", "source", "confidence", "first_seen", "last_seen", "expires_at", "tlp", "scam_type",
                "description", "revoked", "sightings")


def upsert_core(conn: Connection, partner: str, rows: Sequence[InboxRow], max_retention: int, now: datetime) -> int:
    """Write approved partner indicators into the core table, in bulk: source ``partner:<NAME>``,
    confidence scaled by the trust weight, kept no longer than both sides allow."""
    if not rows:
        return 0
    stamp = timestamp_param(conn) or _unchanged
    source, now_param = f"{PARTNER_SOURCE_PREFIX}{partner}", stamp(now)
    until_by_retention: dict[int, datetime] = {}
    scaled_by_weight: dict[float, list[int]] = {}  # confidence 0..100 times the trust weight, rounded
    params = []
    for r in rows:
        retention = min(r.retention_days or max_retention, max_retention)
        expires = until_by_retention.get(retention)
        if expires is None:
            expires = until_by_retention[retention] = now + timedelta(days=retention)
        if r.valid_until is not None and r.valid_until < expires:
            expires = r.valid_until
        first = r.valid_from if r.valid_from is not None and r.valid_from < now else now
        scaled = scaled_by_weight.get(r.trust_weight)
        if scaled is None:
            scaled = scaled_by_weight[r.trust_weight] = [max(0, min(100, round(c * r.trust_weight)))
                                                         for c in range(101)]
        confidence = scaled[r.confidence] if 0 <= r.confidence <= 100 else max(0, min(100, round(
            r.confidence * r.trust_weight)))
        params.append((r.type, r.value, source, confidence, stamp(first), now_param, stamp(expires), r.tlp,
                       r.scam_type, f"from partner {partner}: {r.stix_id}", False, 1))
    # the same effect as repository.upsert_indicator, for thousands of rows in one statement
    refreshed = {c: f"excluded.{c}" for c in ("confidence", "last_seen", "expires_at", "tlp", "scam_type",
                                                "description", "revoked")}
    insert_tuples(conn, t.indicators, CORE_COLUMNS, params, conflict=["type", "value", "source"],
                  update={**refreshed, "sightings": "indicators.sightings + 1"})
    return len(params)


def _unchanged(value: Any) -> Any:
    return value


def _revoke(conn: Connection, partner: str, rows: list[InboxRow]) -> int:
    """A partner withdrew these: mark their core rows revoked (the firewall stops using them)."""
    ib, ind = federation_inbox, t.indicators
    source = f"{PARTNER_SOURCE_PREFIX}{partner}"
    done = 0
    stix_ids = [r.stix_id for r in rows]
    pairs = {(r.type, r.value) for r in rows if r.value}
    for start in range(0, len(stix_ids), CHUNK):
        part = stix_ids[start:start + CHUNK]
        conn.execute(update(ib).where(ib.c.partner == partner, ib.c.stix_id.in_(part)).values(revoked=True))
        # a revocation may carry no value we can read (e.g. a keyed hash): find earlier versions by id
        pairs.update((typ, val) for typ, val in conn.execute(select(ib.c.type, ib.c.value).where(
            ib.c.partner == partner, ib.c.stix_id.in_(part), ib.c.value.is_not(None))))
    ordered = sorted(pairs)
    for start in range(0, len(ordered), CHUNK):
        done += int(conn.execute(update(ind).where(ind.c.source == source,
                                                   tuple_(ind.c.type, ind.c.value).in_(ordered[start:start + CHUNK]))
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
    by_partner: dict[str, list[InboxRow]] = {}
    for r in rows:
        item = InboxRow(**{c: r[c] for c in INBOX_COLUMNS})
        by_partner.setdefault(r["partner"], []).append(
            item._replace(valid_from=utc(item.valid_from), valid_until=utc(item.valid_until)))
    for partner, items in by_partner.items():
        if approve:
            try:
                max_ret = policy.partner(partner).inbound.max_retention_days
            except PolicyError:
                max_ret = 30  # a partner since removed from the policy: keep its approved items briefly
            upsert_core(conn, partner, items, max_ret, now)
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


UNLISTED_PARTNER_RETENTION_DAYS = 30  # a partner since removed from the policy: as decide() keeps its items


@dataclass
class RetentionReport:
    """What one retention pass removed."""

    inbox: int = 0
    indicators: int = 0
    replay_keys: int = 0

    @property
    def total(self) -> int:
        return self.inbox + self.indicators + self.replay_keys


def retention_days_for(policy: NodePolicy | None, partner: str) -> int | None:
    """Our own limit on keeping ``partner``'s assertions (``inbound.max_retention_days``)."""
    if policy is None:
        return None
    try:
        return policy.partner(partner).inbound.max_retention_days
    except PolicyError:
        return UNLISTED_PARTNER_RETENTION_DAYS


def apply_retention(conn: Connection, policy: NodePolicy | None = None, now: datetime | None = None) -> RetentionReport:
    """Forget partner assertions past the retention both sides allow, and what they put in the core table.

    An inbox row is kept for the shorter of the sender's ``retention_days`` marking (its sharing
    policy towards us) and our inbound ``max_retention_days`` for that partner, counted from when we
    received it; without ``policy`` only the sender's marking counts. Core indicators from partners
    then go when they expired, or when no assertion of their partner about that value is left (an
    indicator approved late would otherwise outlive the assertion it came from). Without their core
    rows the values stop reaching reputation, the firewall and forewarning. With ``policy``, replay
    keys (nonces, bundle ids) older than the bundle age limit go too: anything that old is refused
    by its timestamp anyway.
    """
    ib, ind = federation_inbox, t.indicators
    now = now or utcnow()
    report = RetentionReport()
    for partner, days in conn.execute(select(ib.c.partner, ib.c.retention_days).distinct()).fetchall():
        ours = retention_days_for(policy, partner)
        keep = min(d for d in (days, ours) if d is not None) if (days or ours) else None
        if keep is None:
            continue
        sender_marking = ib.c.retention_days.is_(None) if days is None else ib.c.retention_days == days
        report.inbox += int(conn.execute(ib.delete().where(
            ib.c.partner == partner, sender_marking, ib.c.received_at < now - timedelta(days=keep))).rowcount or 0)
    partner_rows = ind.c.source.startswith(PARTNER_SOURCE_PREFIX)
    report.indicators += int(conn.execute(ind.delete().where(partner_rows, ind.c.expires_at < now)).rowcount or 0)
    # Two statements, not "expired OR NOT EXISTS": a NOT EXISTS on its own becomes an anti-join on
    # PostgreSQL (inside an OR it is a subplan run per row), and comparing the partner column itself
    # (not "partner:" || partner) lets both databases probe ix_federation_inbox_asserted on all columns.
    asserted = select(ib.c.id).where(
        ib.c.type == ind.c.type, ib.c.value == ind.c.value,
        ib.c.partner == func.substr(ind.c.source, len(PARTNER_SOURCE_PREFIX) + 1)).exists()
    report.indicators += int(conn.execute(ind.delete().where(partner_rows, ~asserted)).rowcount or 0)
    if policy is not None:
        report.replay_keys = forget_older_than(conn, policy.bundle_max_age_days + 1)
    return report


def provenance(conn: Connection, type_: str, value: str) -> list[dict[str, Any]]:
    """Who told us about ``value``, when, and what became of it."""
    ib = federation_inbox
    rows = conn.execute(select(ib.c.partner, ib.c.stix_id, ib.c.modified, ib.c.received_at, ib.c.confidence,
                               ib.c.status, ib.c.signed, ib.c.bundle_id, ib.c.revoked)
                        .where(ib.c.type == type_, ib.c.value == value).order_by(ib.c.received_at)).mappings()
    return [dict(r) for r in rows]

