"""Cases: alerts, victims, suspects and indicators grouped under one centre, with their outcomes
(solved, suspects arrested, losses, amounts recovered) feeding the statistics.

A victim joins the open case of any suspect (number, sender or account) it shares; otherwise a
new case opens at the victim's centre. Outcomes are recorded as history rows and as totals on the
case itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from forewarn.centres import tables as ct
from forewarn.model.indicators import utcnow
from forewarn.model.records import Case, CaseStatus
from forewarn.store import repository as repo
from forewarn.store import schema as t

OPEN_CASE_STATES = ("open", "investigating")


class CaseError(ValueError):
    """A case operation that cannot be done; the message says why."""


class CaseIndex:
    """Open cases by suspect, kept in memory by the engine so grouping costs no query per alert."""

    def __init__(self) -> None:
        self.by_suspect: dict[str, str] = {}

    @classmethod
    def from_store(cls, conn: Connection) -> CaseIndex:
        index = cls()
        for row in conn.execute(select(t.cases.c.case_id, t.cases.c.members).where(
                t.cases.c.status.in_(OPEN_CASE_STATES))):
            for suspect in (row.members or {}).get("suspects", []):
                index.by_suspect.setdefault(suspect, row.case_id)
        return index

    def find(self, suspects: list[str]) -> str | None:
        for s in suspects:
            if s in self.by_suspect:
                return self.by_suspect[s]
        return None


def _merge(values: list[str], more: list[str]) -> list[str]:
    seen = dict.fromkeys(values)
    for v in more:
        seen.setdefault(v, None)
    return list(seen)


def attach(conn: Connection, *, victim: str, suspects: list[str], indicators: list[str], alert_id: str | None,
           centre_id: str | None, scam_type: str | None, index: CaseIndex | None = None,
           title: str | None = None) -> str:
    """Attach a victim's alert to the open case of a shared suspect, or open a new case."""
    case_id = index.find(suspects) if index else _find_case(conn, suspects)
    case = repo.get_case(conn, case_id) if case_id else None
    if case is None or case.status.value not in OPEN_CASE_STATES:
        case = Case(title=title or f"{scam_type or 'fraud'}: contact by {suspects[0] if suspects else 'unknown'}",
                    centre_id=centre_id, scam_type=scam_type)
    case.victims = _merge(case.victims, [victim])
    case.suspects = _merge(case.suspects, suspects)
    case.indicators = _merge(case.indicators, indicators)
    if alert_id:
        case.alert_ids = _merge(case.alert_ids, [alert_id])
    if case.scam_type is None:
        case.scam_type = scam_type
    repo.save_case(conn, case)
    if index is not None:
        for s in suspects:
            index.by_suspect.setdefault(s, case.case_id)
    return case.case_id


def _find_case(conn: Connection, suspects: list[str]) -> str | None:
    if not suspects:
        return None
    wanted = set(suspects)
    for row in conn.execute(select(t.cases.c.case_id, t.cases.c.members).where(
            t.cases.c.status.in_(OPEN_CASE_STATES)).order_by(t.cases.c.created_at.desc())):
        if wanted & set((row.members or {}).get("suspects", [])):
            return str(row.case_id)
    return None


def open_case_for_victim(conn: Connection, victim: str, *, centre_id: str | None, alert_id: str | None,
                         existing: str | None = None, scam_type: str | None = None,
                         suspects: list[str] | None = None) -> str:
    if existing and repo.get_case(conn, existing) is not None:
        return existing
    return attach(conn, victim=victim, suspects=suspects or [], indicators=[], alert_id=alert_id,
                  centre_id=centre_id, scam_type=scam_type)


@dataclass(frozen=True)
class CaseOutcome:
    status: str
    suspects_arrested: int = 0
    loss_amount: float = 0.0
    recovered_amount: float = 0.0
    note: str | None = None


def record_case_outcome(conn: Connection, case_id: str, actor: str, outcome: CaseOutcome,
                        now: datetime | None = None) -> Case:
    """Set a case's status and add arrests, losses and recoveries (amounts add up over reports)."""
    now = now or utcnow()
    try:
        status = CaseStatus(outcome.status)
    except ValueError:
        raise CaseError(f"unknown case status {outcome.status!r}; one of "
                        f"{', '.join(s.value for s in CaseStatus)}") from None
    if outcome.suspects_arrested < 0 or outcome.loss_amount < 0 or outcome.recovered_amount < 0:
        raise CaseError("arrests and amounts cannot be negative")
    case = repo.get_case(conn, case_id)
    if case is None:
        raise CaseError(f"no case {case_id!r}")
    case.status = status
    case.suspects_arrested += outcome.suspects_arrested
    case.loss_amount += outcome.loss_amount
    case.recovered_amount += outcome.recovered_amount
    if case.recovered_amount > case.loss_amount and case.loss_amount > 0:
        raise CaseError("recovered amount would exceed the recorded loss")
    repo.save_case(conn, case)
    conn.execute(ct.case_outcomes.insert().values(
        case_id=case_id, actor=actor[:120], status=status.value, suspects_arrested=outcome.suspects_arrested,
        loss_amount=outcome.loss_amount, recovered_amount=outcome.recovered_amount, note=outcome.note,
        recorded_at=now))
    return case


def case_statistics(conn: Connection) -> dict[str, Any]:
    """Counts and totals across cases and officers' outcomes, for the publishing capability."""
    from forewarn.centres.tasks import count_tasks, outcome_totals

    by_status = {s: int(n) for s, n in conn.execute(select(t.cases.c.status, func.count()).group_by(t.cases.c.status))}
    totals = conn.execute(select(func.coalesce(func.sum(t.cases.c.loss_amount), 0.0),
                                 func.coalesce(func.sum(t.cases.c.recovered_amount), 0.0),
                                 func.coalesce(func.sum(t.cases.c.suspects_arrested), 0))).one()
    victims = 0
    for (members,) in conn.execute(select(t.cases.c.members)):
        victims += len((members or {}).get("victims", []))
    return {"cases": sum(by_status.values()), "cases_by_status": by_status, "victims_in_cases": victims,
            "loss_amount": float(totals[0]), "recovered_amount": float(totals[1]),
            "suspects_arrested": int(totals[2]), "tasks_by_status": count_tasks(conn), **outcome_totals(conn)}
