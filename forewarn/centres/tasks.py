"""Task queues of the centres: call-backs, payment holds and visits, each with a deadline to
acknowledge; escalation up the hierarchy (city → province → national) when the deadline passes;
officers' outcomes (victim reached, loss prevented, case opened).

Task states: ``open`` (waiting for an officer), ``acknowledged`` (an officer or the bank has it),
``done`` (outcome recorded), ``overdue`` (not acknowledged even at the national level; stays in the
national queue), ``cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from forewarn.centres import tables as ct
from forewarn.centres.routing import Router
from forewarn.model.indicators import utcnow
from forewarn.model.records import Centre, new_id
from forewarn.store.db import insert_ignoring_duplicates, utc

TASK_KINDS = ("callback", "payment_hold", "visit")
OPEN_STATES = ("open", "overdue")
PRIORITY = {"visit": 1, "payment_hold": 1, "callback": 2}


class TaskError(ValueError):
    """A task operation that cannot be done (unknown task, wrong state); the message says why."""


def create_task(conn: Connection, *, kind: str, subscriber: str, centre: Centre, ack_minutes: float,
                idempotency_key: str, score: float = 0.0, reasons: list[str] | None = None,
                detail: dict[str, Any] | None = None, alert_id: str | None = None, case_id: str | None = None,
                now: datetime | None = None) -> str | None:
    """Queue a task at ``centre``; returns its id, or None when the idempotency key already exists."""
    if kind not in TASK_KINDS:
        raise TaskError(f"unknown task kind {kind!r}; one of {', '.join(TASK_KINDS)}")
    now = now or utcnow()
    task_id = new_id("task")
    created = insert_ignoring_duplicates(conn, ct.centre_tasks, [{
        "task_id": task_id, "kind": kind, "subscriber": subscriber, "alert_id": alert_id, "case_id": case_id,
        "centre_id": centre.centre_id, "level": centre.level.value, "officer_id": None, "status": "open",
        "priority": PRIORITY.get(kind, 3), "score": round(score, 4), "reasons": reasons or [], "detail": detail or {},
        "idempotency_key": idempotency_key, "created_at": now, "due_at": now + timedelta(minutes=ack_minutes),
        "acknowledged_at": None, "completed_at": None, "escalations": 0,
        "history": [{"at": now.isoformat(), "event": "queued", "centre_id": centre.centre_id}]}],
        ["idempotency_key"])
    return task_id if created else None


def _task(row: Any) -> dict[str, Any]:
    data = dict(row)
    for key in ("created_at", "due_at", "acknowledged_at", "completed_at"):
        data[key] = utc(data[key])
    return data


def get_task(conn: Connection, task_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(ct.centre_tasks).where(ct.centre_tasks.c.task_id == task_id)).mappings().first()
    return _task(row) if row else None


def list_tasks(conn: Connection, *, centre_id: str | None = None, status: str | None = None,
               kind: str | None = None, subscriber: str | None = None, limit: int = 100,
               offset: int = 0) -> list[dict[str, Any]]:
    """Tasks, most urgent first (priority, then deadline)."""
    stmt = select(ct.centre_tasks)
    for col, val in (("centre_id", centre_id), ("status", status), ("kind", kind), ("subscriber", subscriber)):
        if val:
            stmt = stmt.where(ct.centre_tasks.c[col] == val)
    stmt = stmt.order_by(ct.centre_tasks.c.priority, ct.centre_tasks.c.due_at).limit(limit).offset(offset)
    return [_task(r) for r in conn.execute(stmt).mappings()]


def count_tasks(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(ct.centre_tasks.c.status, func.count()).group_by(ct.centre_tasks.c.status))
    return {status: int(n) for status, n in rows}


def _history(task: dict[str, Any], **entry: Any) -> list[dict[str, Any]]:
    return [*task["history"], {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in entry.items()}]


def acknowledge(conn: Connection, task_id: str, actor: str, *, now: datetime | None = None) -> dict[str, Any]:
    """An officer (or, for a hold, the bank) takes the task; stops its escalation."""
    now = now or utcnow()
    task = get_task(conn, task_id)
    if task is None:
        raise TaskError(f"no task {task_id!r}")
    if task["status"] not in OPEN_STATES:
        raise TaskError(f"task {task_id} is {task['status']}; only open or overdue tasks can be acknowledged")
    conn.execute(update(ct.centre_tasks).where(ct.centre_tasks.c.task_id == task_id).values(
        status="acknowledged", officer_id=actor[:120], acknowledged_at=now,
        history=_history(task, at=now, event="acknowledged", by=actor)))
    return {**task, "status": "acknowledged", "officer_id": actor, "acknowledged_at": now}


@dataclass(frozen=True)
class Outcome:
    victim_reached: bool
    loss_prevented: float = 0.0
    currency: str | None = None
    case_opened: bool = False
    note: str | None = None


def record_outcome(conn: Connection, task_id: str, actor: str, outcome: Outcome, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """Close a task with its outcome; opens (or reuses) a case for the victim when asked."""
    from forewarn.centres.cases import open_case_for_victim

    now = now or utcnow()
    task = get_task(conn, task_id)
    if task is None:
        raise TaskError(f"no task {task_id!r}")
    if task["status"] == "done":
        raise TaskError(f"task {task_id} already has an outcome")
    if task["status"] == "cancelled":
        raise TaskError(f"task {task_id} was cancelled")
    if outcome.loss_prevented < 0:
        raise TaskError("loss prevented cannot be negative")
    if outcome.currency is not None and (len(outcome.currency) != 3 or not outcome.currency.isalpha()):
        raise TaskError("currency is an ISO 4217 code such as THB")
    case_id = task["case_id"]
    if outcome.case_opened:
        case_id = open_case_for_victim(conn, task["subscriber"], centre_id=task["centre_id"],
                                       alert_id=task["alert_id"], existing=case_id,
                                       scam_type=task["detail"].get("scam_type"),
                                       suspects=task["detail"].get("suspects", []))
    conn.execute(ct.task_outcomes.insert().values(
        task_id=task_id, officer=actor[:120], victim_reached=outcome.victim_reached,
        loss_prevented=float(outcome.loss_prevented), currency=outcome.currency.upper() if outcome.currency else None,
        case_id=case_id, note=outcome.note, recorded_at=now))
    conn.execute(update(ct.centre_tasks).where(ct.centre_tasks.c.task_id == task_id).values(
        status="done", completed_at=now, case_id=case_id, officer_id=task["officer_id"] or actor[:120],
        history=_history(task, at=now, event="outcome", by=actor, victim_reached=outcome.victim_reached,
                         loss_prevented=outcome.loss_prevented)))
    return {"task_id": task_id, "status": "done", "case_id": case_id, "victim_reached": outcome.victim_reached,
            "loss_prevented": outcome.loss_prevented, "currency": outcome.currency}


@dataclass(frozen=True)
class Escalation:
    task_id: str
    from_centre: str
    to_centre: str | None
    level: str


def escalate_due(conn: Connection, router: Router, *, minutes_per_level: float,
                 now: datetime | None = None, limit: int = 10_000) -> list[Escalation]:
    """Move every open task past its deadline to the parent centre (new deadline); at the top,
    mark it overdue once. Returns what moved."""
    now = now or utcnow()
    due = conn.execute(select(ct.centre_tasks).where(ct.centre_tasks.c.status == "open",
                                                     ct.centre_tasks.c.due_at < now).limit(limit)).mappings().all()
    moved: list[Escalation] = []
    for row in due:
        task = _task(row)
        parent = router.parent(task["centre_id"])
        if parent is None:
            conn.execute(update(ct.centre_tasks).where(ct.centre_tasks.c.task_id == task["task_id"],
                                                       ct.centre_tasks.c.status == "open").values(
                status="overdue", history=_history(task, at=now, event="overdue", centre_id=task["centre_id"])))
            moved.append(Escalation(task["task_id"], task["centre_id"], None, task["level"]))
            continue
        conn.execute(update(ct.centre_tasks).where(ct.centre_tasks.c.task_id == task["task_id"],
                                                   ct.centre_tasks.c.status == "open").values(
            centre_id=parent.centre_id, level=parent.level.value, escalations=task["escalations"] + 1,
            due_at=now + timedelta(minutes=minutes_per_level),
            history=_history(task, at=now, event="escalated", from_centre=task["centre_id"],
                             to_centre=parent.centre_id)))
        moved.append(Escalation(task["task_id"], task["centre_id"], parent.centre_id, parent.level.value))
    return moved


def outcome_totals(conn: Connection) -> dict[str, Any]:
    """Totals of officers' outcomes, for the statistics."""
    row = conn.execute(select(func.count(), func.sum(ct.task_outcomes.c.loss_prevented),
                              func.sum(case((ct.task_outcomes.c.victim_reached.is_(True), 1), else_=0)))).first()
    count, prevented, reached = row if row else (0, 0, 0)
    return {"outcomes": int(count or 0), "loss_prevented": float(prevented or 0.0), "victims_reached": int(reached or 0)}
