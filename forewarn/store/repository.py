"""Reads and writes of the core records: events, quarantine, indicators, signals, alerts,
warnings, cases and centres. Functions take a SQLAlchemy ``Connection`` so that callers choose the
transaction (one batch = one transaction: all of it lands or none of it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from forewarn.model.events import (
    CallRecord,
    CitizenReport,
    Message,
    Payment,
    ProviderSignal,
    SubscriberRecord,
)
from forewarn.model.indicators import Indicator, IndicatorType, utcnow
from forewarn.model.records import Alert, AlertStatus, Case, Centre, Signal, Warning
from forewarn.store import schema as t
from forewarn.store.db import insert_ignoring_duplicates, utc

AnyEvent = CallRecord | Message | Payment | CitizenReport | ProviderSignal | SubscriberRecord


def _counterpart(ev: AnyEvent) -> str | None:
    if isinstance(ev, CallRecord):
        return ev.callee
    if isinstance(ev, Message):
        return ev.recipient
    if isinstance(ev, Payment):
        return ev.payer_phone or ev.payer_account
    if isinstance(ev, CitizenReport):
        return ev.reporter
    if isinstance(ev, ProviderSignal):
        return ev.indicator_value if ev.subscriber else None
    return None


def event_row(ev: AnyEvent, batch_id: str | None, ingested_at: datetime | None = None) -> dict[str, Any]:
    return {
        "event_id": ev.event_id,
        "kind": ev.kind,
        "occurred_at": ev.time,
        "subject": ev.subject(),
        "counterpart": _counterpart(ev),
        "payload": ev.model_dump(mode="json"),
        "source": ev.source,
        "batch_id": batch_id,
        "ingested_at": ingested_at or utcnow(),
    }


def insert_events(conn: Connection, evs: Sequence[AnyEvent], batch_id: str | None = None) -> int:
    """Store events idempotently by ``event_id``; returns how many were new."""
    now = utcnow()
    return insert_ignoring_duplicates(conn, t.events, [event_row(e, batch_id, now) for e in evs], ["event_id"])


def count_events(conn: Connection, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(t.events)
    if kind:
        stmt = stmt.where(t.events.c.kind == kind)
    return int(conn.execute(stmt).scalar_one())


def iter_event_payloads(conn: Connection, kind: str, *, since: datetime | None = None,
                        chunk: int = 50_000) -> Iterable[dict[str, Any]]:
    """Payloads of stored events of one kind in time order, streamed in chunks."""
    stmt = select(t.events.c.payload).where(t.events.c.kind == kind)
    if since is not None:
        stmt = stmt.where(t.events.c.occurred_at >= since)
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
        stmt.order_by(t.events.c.occurred_at, t.events.c.event_id))
    for (payload,) in result:
        yield payload


def quarantine_rows(conn: Connection, batch_id: str, origin: str, rows: Sequence[dict[str, Any]], *,
                    skip_known: bool = False) -> int:
    """Record rejected rows (``row_number``, ``kind``, ``reason``, ``raw``) with their batch.

    ``skip_known`` leaves out rows already quarantined from the same origin at the same row number
    with the same content: rerunning a file after a crash (or by mistake) must not list its bad
    rows twice for the analyst who fixes them. Returns how many rows were stored.
    """
    now = utcnow()
    origin = origin[:1024]
    payload = [{"batch_id": batch_id, "origin": origin, "row_number": r.get("row_number"),
                "kind": r.get("kind"), "reason": str(r["reason"])[:4000], "raw": str(r.get("raw", ""))[:4000],
                "quarantined_at": now} for r in rows]
    if skip_known and payload:
        numbers = sorted({p["row_number"] for p in payload if p["row_number"] is not None})
        known: set[tuple[int, str]] = set()
        for i in range(0, len(numbers), 500):  # stay under every backend's bound-parameter limit
            known.update((int(n), str(raw)) for n, raw in conn.execute(
                select(t.quarantine.c.row_number, t.quarantine.c.raw).where(
                    t.quarantine.c.origin == origin, t.quarantine.c.row_number.in_(numbers[i:i + 500]))))
        payload = [p for p in payload if (p["row_number"], p["raw"]) not in known]
    if payload:
        conn.execute(t.quarantine.insert(), payload)
    return len(payload)


def count_quarantined(conn: Connection, batch_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(t.quarantine)
    if batch_id:
        stmt = stmt.where(t.quarantine.c.batch_id == batch_id)
    return int(conn.execute(stmt).scalar_one())


# --- indicators -------------------------------------------------------------------------------

def upsert_indicator(conn: Connection, ind: Indicator) -> None:
    """Insert an indicator, or refresh the one from the same source: last_seen, confidence, sightings."""
    existing = conn.execute(select(t.indicators.c.id, t.indicators.c.sightings, t.indicators.c.first_seen).where(and_(
        t.indicators.c.type == ind.type.value, t.indicators.c.value == ind.value,
        t.indicators.c.source == ind.source))).first()
    values = {"confidence": ind.confidence, "last_seen": ind.last_seen, "expires_at": ind.expires_at,
              "tlp": ind.tlp.value, "scam_type": ind.scam_type, "description": ind.description, "revoked": False}
    if existing is None:
        conn.execute(t.indicators.insert().values(type=ind.type.value, value=ind.value, source=ind.source,
                                                  first_seen=ind.first_seen, sightings=1, **values))
    else:
        conn.execute(update(t.indicators).where(t.indicators.c.id == existing.id).values(
            sightings=existing.sightings + 1, **values))


def _indicator_from_row(row: Any) -> Indicator:
    return Indicator(type=IndicatorType(row.type), value=row.value, confidence=row.confidence, source=row.source,
                     first_seen=utc(row.first_seen), last_seen=utc(row.last_seen), expires_at=utc(row.expires_at),
                     tlp=row.tlp, scam_type=row.scam_type, description=row.description)


def list_indicators(conn: Connection, *, type_: str | None = None, value: str | None = None,
                    active_at: datetime | None = None, limit: int = 100, offset: int = 0) -> list[Indicator]:
    stmt = select(t.indicators).where(t.indicators.c.revoked.is_(False))
    if type_:
        stmt = stmt.where(t.indicators.c.type == type_)
    if value:
        stmt = stmt.where(t.indicators.c.value == value)
    if active_at is not None:
        stmt = stmt.where((t.indicators.c.expires_at.is_(None)) | (t.indicators.c.expires_at > active_at))
    rows = conn.execute(stmt.order_by(t.indicators.c.id).limit(limit).offset(offset))
    return [_indicator_from_row(r) for r in rows]


# --- signals, alerts, warnings, cases, centres ---------------------------------------------------

def insert_signals(conn: Connection, sigs: Sequence[Signal]) -> int:
    rows = [s.model_dump(mode="python") for s in sigs]
    for row, sig in zip(rows, sigs, strict=True):
        row["subject_type"] = sig.subject_type.value
    return insert_ignoring_duplicates(conn, t.signals, rows, ["signal_id"])


def list_signals(conn: Connection, *, subject: str | None = None, limit: int = 100) -> list[Signal]:
    stmt = select(t.signals)
    if subject:
        stmt = stmt.where(t.signals.c.subject == subject)
    rows = conn.execute(stmt.order_by(t.signals.c.observed_at.desc()).limit(limit)).mappings()
    return [Signal.model_validate({**r, "observed_at": utc(r["observed_at"])}) for r in rows]


def insert_alerts(conn: Connection, items: Sequence[Alert]) -> int:
    rows = [a.model_dump(mode="python") for a in items]
    for row in rows:
        row["role"] = str(row["role"])
        row["subject_type"] = str(row["subject_type"])
        row["status"] = str(row["status"])
    return insert_ignoring_duplicates(conn, t.alerts, rows, ["alert_id"])


def _alert(row: Any) -> Alert:
    return Alert.model_validate({**row, "created_at": utc(row["created_at"]), "updated_at": utc(row["updated_at"])})


def list_alerts(conn: Connection, *, status: str | None = None, role: str | None = None,
                centre_id: str | None = None, subject: str | None = None,
                limit: int = 100, offset: int = 0) -> list[Alert]:
    stmt = select(t.alerts)
    for col, val in (("status", status), ("role", role), ("centre_id", centre_id), ("subject", subject)):
        if val:
            stmt = stmt.where(t.alerts.c[col] == val)
    rows = conn.execute(stmt.order_by(t.alerts.c.score.desc(), t.alerts.c.created_at.desc())
                        .limit(limit).offset(offset)).mappings()
    return [_alert(r) for r in rows]


def get_alert(conn: Connection, alert_id: str) -> Alert | None:
    row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert_id)).mappings().first()
    return _alert(row) if row else None


def set_alert_status(conn: Connection, alert_id: str, status: AlertStatus, centre_id: str | None = None) -> bool:
    values: dict[str, Any] = {"status": status.value, "updated_at": utcnow()}
    if centre_id is not None:
        values["centre_id"] = centre_id
    return bool(conn.execute(update(t.alerts).where(t.alerts.c.alert_id == alert_id).values(**values)).rowcount)


def insert_warnings(conn: Connection, items: Sequence[Warning]) -> int:
    rows = [w.model_dump(mode="python") for w in items]
    for row in rows:
        row["status"] = str(row["status"])
    return insert_ignoring_duplicates(conn, t.warnings_, rows, ["warning_id"])


def _warning(row: Any) -> Warning:
    return Warning.model_validate({**row, "created_at": utc(row["created_at"]),
                                   "decisive_event_at": utc(row["decisive_event_at"])})


def list_warnings(conn: Connection, *, recipient: str | None = None, limit: int = 100, offset: int = 0) -> list[Warning]:
    stmt = select(t.warnings_)
    if recipient:
        stmt = stmt.where(t.warnings_.c.recipient == recipient)
    rows = conn.execute(stmt.order_by(t.warnings_.c.created_at.desc()).limit(limit).offset(offset)).mappings()
    return [_warning(r) for r in rows]


def get_warning(conn: Connection, warning_id: str) -> Warning | None:
    row = conn.execute(select(t.warnings_).where(t.warnings_.c.warning_id == warning_id)).mappings().first()
    return _warning(row) if row else None


def _case_row(case: Case) -> dict[str, Any]:
    data = case.model_dump(mode="python")
    members = {k: data.pop(k) for k in ("alert_ids", "victims", "suspects", "indicators")}
    data["members"] = members
    data["status"] = str(data["status"])
    data["tlp"] = str(data["tlp"])
    return data


def _case(row: Any) -> Case:
    data = dict(row)
    data.update(data.pop("members"))
    data["created_at"] = utc(data["created_at"])
    data["updated_at"] = utc(data["updated_at"])
    return Case.model_validate(data)


def save_case(conn: Connection, case: Case) -> None:
    row = _case_row(case)
    if conn.execute(select(t.cases.c.case_id).where(t.cases.c.case_id == case.case_id)).first():
        row["updated_at"] = utcnow()
        conn.execute(update(t.cases).where(t.cases.c.case_id == case.case_id).values(**row))
    else:
        conn.execute(t.cases.insert().values(**row))


def list_cases(conn: Connection, *, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Case]:
    stmt = select(t.cases)
    if status:
        stmt = stmt.where(t.cases.c.status == status)
    rows = conn.execute(stmt.order_by(t.cases.c.created_at.desc()).limit(limit).offset(offset)).mappings()
    return [_case(r) for r in rows]


def get_case(conn: Connection, case_id: str) -> Case | None:
    row = conn.execute(select(t.cases).where(t.cases.c.case_id == case_id)).mappings().first()
    return _case(row) if row else None


def save_centres(conn: Connection, items: Iterable[Centre]) -> int:
    rows = [{**c.model_dump(mode="python"), "level": c.level.value} for c in items]
    conn.execute(t.centres.delete().where(t.centres.c.centre_id.in_([r["centre_id"] for r in rows])))
    if rows:
        conn.execute(t.centres.insert(), rows)
    return len(rows)


def list_centres(conn: Connection) -> list[Centre]:
    return [Centre.model_validate(dict(r)) for r in conn.execute(select(t.centres)).mappings()]
