"""Appeals and analyst verdicts.

A number's (or sender ID's) owner appeals a mark or block; the appeal gets a deadline from the
country policy. An analyst decides with a reason: *upheld* records a ``not_scam`` verdict that
clears every earlier assertion and report about the value (the index drops them at its next
refresh, within seconds), *rejected* records a ``scam`` verdict that the index counts as an
analyst-confirmed source. Either way the citizen reports about the value are settled, which is
what builds reporters' track records. An appeal still undecided past its deadline lifts the mark
until an analyst decides (the firewall reports ``appeal.overdue_lifted``) -- unless an analyst's
latest verdict on the value is ``scam`` (an earlier appeal was rejected): then the mark stays until
an analyst decides again (policy ``appeals.lift_overdue_after_rejection``). Every appeal is shown
with the value's earlier decisions (``prior``: earlier appeals and the latest verdict), so a
repeated appeal is visibly judged against the previous one. Every decision is written to the audit
log in the same transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select, update

from forewarn.model.indicators import IndicatorType, InvalidIndicator, normalise_indicator, utcnow
from forewarn.reputation import tables as rt
from forewarn.reputation.reports import settle_reports
from forewarn.store import audit
from forewarn.store.db import utc

APPEALABLE = (IndicatorType.PHONE, IndicatorType.SENDER_ID, IndicatorType.URL, IndicatorType.DOMAIN)
MAX_STATEMENT = 2000


class AppealError(ValueError):
    """An appeal that cannot be taken or decided; the message says why."""


def _canonical(indicator_type: str, value: str) -> tuple[IndicatorType, str]:
    try:
        kind = IndicatorType(indicator_type)
    except ValueError:
        raise AppealError(f"unknown indicator type {indicator_type!r}") from None
    if kind not in APPEALABLE:
        raise AppealError(f"{kind.value} cannot be appealed here; appealable: {', '.join(k.value for k in APPEALABLE)}")
    try:
        return kind, normalise_indicator(kind, value)
    except InvalidIndicator as exc:
        raise AppealError(str(exc)) from None


def submit_appeal(conn: Connection, indicator_type: str, value: str, contact: str, statement: str, *,
                  deadline_hours: float, now: datetime | None = None, actor: str = "public") -> dict[str, Any]:
    """Open an appeal; one pending appeal per value."""
    kind, canonical = _canonical(indicator_type, value)
    contact = contact.strip()
    statement = statement.strip()
    if not contact or len(contact) > 200:
        raise AppealError("give a contact (1–200 characters) so that the analyst can reach you")
    if not statement or len(statement) > MAX_STATEMENT:
        raise AppealError(f"explain the appeal in 1–{MAX_STATEMENT} characters")
    pending = conn.execute(select(rt.appeals.c.appeal_id).where(and_(
        rt.appeals.c.indicator_type == kind.value, rt.appeals.c.value == canonical,
        rt.appeals.c.status == "pending"))).first()
    if pending is not None:
        raise AppealError(f"an appeal for {canonical} is already pending ({pending.appeal_id})")
    now = now or utcnow()
    row = {"appeal_id": f"apl-{secrets.token_hex(8)}", "indicator_type": kind.value, "value": canonical,
           "contact": contact, "statement": statement, "status": "pending", "submitted_at": now,
           "deadline_at": now + timedelta(hours=deadline_hours), "decided_at": None, "decided_by": None,
           "decision_reason": None}
    prior = _prior_as_of(_history(conn, [(kind.value, canonical)]).get((kind.value, canonical)), None)
    conn.execute(rt.appeals.insert().values(**row))
    audit.append(conn, actor, "appeal.submit", canonical,
                 {"appeal_id": row["appeal_id"], "type": kind.value,
                  "prior_verdict": prior["latest_verdict"]["verdict"] if prior["latest_verdict"] else None,
                  "prior_appeals": len(prior["appeals"])})
    return {**row, "prior": prior}


def _no_prior() -> dict[str, Any]:
    return {"appeals": [], "latest_verdict": None}


def _history(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[list[Any], list[Any]]]:
    """Per (type, value): its decided appeals, newest first, and its verdicts, oldest first."""
    out: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
    wanted = sorted({value for _, value in keys})
    a, v = rt.appeals.c, rt.verdicts.c
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for r in conn.execute(select(a.appeal_id, a.indicator_type, a.value, a.status, a.submitted_at,
                                     a.decided_at, a.decided_by, a.decision_reason)
                              .where(a.value.in_(chunk), a.status != "pending").order_by(a.decided_at.desc())):
            out.setdefault((r.indicator_type, r.value), ([], []))[0].append(r)
        for vr in conn.execute(select(v.indicator_type, v.value, v.verdict, v.reason, v.decided_by, v.decided_at,
                                     v.appeal_id).where(v.value.in_(chunk)).order_by(v.decided_at, v.id)):
            out.setdefault((vr.indicator_type, vr.value), ([], []))[1].append(vr)
    return out


def _prior_as_of(history: tuple[list[Any], list[Any]] | None, before: datetime | None) -> dict[str, Any]:
    """What an analyst had decided about a value before ``before`` (an appeal's submission): its
    earlier appeals (without their contact details) and the latest verdict."""
    if history is None:
        return _no_prior()
    earlier_appeals, verdicts = history

    def earlier(at: Any) -> bool:
        decided = utc(at)
        return before is None or (decided is not None and decided < before)

    latest = None
    for r in verdicts:
        if earlier(r.decided_at):
            latest = {"verdict": r.verdict, "reason": r.reason, "decided_by": r.decided_by,
                      "decided_at": utc(r.decided_at), "appeal_id": r.appeal_id}
    return {"appeals": [{"appeal_id": r.appeal_id, "status": r.status, "submitted_at": utc(r.submitted_at),
                         "decided_at": utc(r.decided_at), "decided_by": r.decided_by, "reason": r.decision_reason}
                        for r in earlier_appeals if earlier(r.decided_at)],
            "latest_verdict": latest}


def _with_prior(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each appeal with ``prior``: the value's decisions before the appeal came in, which pre-judge it."""
    history = _history(conn, [(r["indicator_type"], r["value"]) for r in rows]) if rows else {}
    return [{**r, "prior": _prior_as_of(history.get((r["indicator_type"], r["value"])), r["submitted_at"])}
            for r in rows]


def _appeal(row: Any) -> dict[str, Any]:
    data = dict(row)
    for col in ("submitted_at", "deadline_at", "decided_at"):
        data[col] = utc(data[col])
    return data


def get_appeal(conn: Connection, appeal_id: str, *, with_prior: bool = True) -> dict[str, Any] | None:
    """One appeal; with ``prior``, the value's decisions before it was submitted."""
    row = conn.execute(select(rt.appeals).where(rt.appeals.c.appeal_id == appeal_id)).mappings().first()
    if row is None:
        return None
    return _with_prior(conn, [_appeal(row)])[0] if with_prior else _appeal(row)


def list_appeals(conn: Connection, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    stmt = select(rt.appeals)
    if status:
        stmt = stmt.where(rt.appeals.c.status == status)
    rows = conn.execute(stmt.order_by(rt.appeals.c.deadline_at).limit(limit).offset(offset)).mappings()
    return _with_prior(conn, [_appeal(r) for r in rows])


def record_verdict(conn: Connection, indicator_type: str, value: str, verdict: str, reason: str, *, actor: str,
                   appeal_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """An analyst's verdict on a value (``scam`` or ``not_scam``), audited; settles its reports."""
    kind, canonical = _canonical(indicator_type, value)
    if verdict not in ("scam", "not_scam"):
        raise AppealError("a verdict is 'scam' or 'not_scam'")
    reason = reason.strip()
    if not reason or len(reason) > MAX_STATEMENT:
        raise AppealError(f"give the reason for the verdict (1–{MAX_STATEMENT} characters)")
    now = now or utcnow()
    row = {"indicator_type": kind.value, "value": canonical, "verdict": verdict, "reason": reason,
           "decided_by": actor, "decided_at": now, "appeal_id": appeal_id}
    conn.execute(rt.verdicts.insert().values(**row))
    settled = settle_reports(conn, kind.value, canonical, verdict, now)
    audit.append(conn, actor, "reputation.verdict", canonical,
                 {"type": kind.value, "verdict": verdict, "reason": reason, "appeal_id": appeal_id,
                  "reports_settled": settled})
    return {**row, "reports_settled": settled}


def decide_appeal(conn: Connection, appeal_id: str, decision: str, reason: str, *, actor: str,
                  now: datetime | None = None) -> dict[str, Any]:
    """Uphold (lift the mark) or reject (confirm it) a pending appeal."""
    if decision not in ("upheld", "rejected"):
        raise AppealError("a decision is 'upheld' (lift the mark) or 'rejected' (keep it)")
    appeal = get_appeal(conn, appeal_id, with_prior=False)
    if appeal is None:
        raise AppealError(f"no appeal {appeal_id!r}")
    if appeal["status"] != "pending":
        raise AppealError(f"appeal {appeal_id} was already decided ({appeal['status']})")
    now = now or utcnow()
    conn.execute(update(rt.appeals).where(rt.appeals.c.appeal_id == appeal_id).values(
        status=decision, decided_at=now, decided_by=actor, decision_reason=reason.strip()))
    verdict = record_verdict(conn, appeal["indicator_type"], appeal["value"],
                             "not_scam" if decision == "upheld" else "scam", reason, actor=actor,
                             appeal_id=appeal_id, now=now)
    audit.append(conn, actor, "appeal.decide", appeal["value"],
                 {"appeal_id": appeal_id, "decision": decision, "reason": reason.strip(),
                  "within_deadline": now <= appeal["deadline_at"]})
    return {**appeal, "status": decision, "decided_at": now, "decided_by": actor,
            "decision_reason": reason.strip(), "reports_settled": verdict["reports_settled"]}
