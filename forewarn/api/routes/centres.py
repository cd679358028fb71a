"""Centre routes: the hierarchy, officers' task queues (acknowledge, record outcomes), banks'
acknowledgement of payment holds, case outcomes and statistics.

The router also runs the centres' background loop while the API serves (``forewarn serve``):
every ``escalation.tick_seconds`` (or ``FOREWARN_CENTRES_TICK_SECONDS``) it escalates unacknowledged
tasks up the hierarchy and turns undelivered warnings into call-backs; set ``FOREWARN_CENTRES_LOOP=0``
to switch it off.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.centres import cases as cs
from forewarn.centres import tasks as tk
from forewarn.store import audit
from forewarn.store import repository as repo

log = logging.getLogger("forewarn.centres")
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


def _loop(app: FastAPI, stop: threading.Event) -> None:
    from forewarn.centres.escalation import tick
    from forewarn.forewarning.policy import Policy

    policy = Policy.load()
    interval = float(os.environ.get("FOREWARN_CENTRES_TICK_SECONDS") or policy.escalation.tick_seconds)
    while not stop.wait(interval):
        try:
            tick(app.state.store, policy)
        except Exception:  # keep escalating on the next tick; the failure is logged
            log.exception("escalation tick failed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    stop = threading.Event()
    thread = None
    if os.environ.get("FOREWARN_CENTRES_LOOP", "1") != "0":
        thread = threading.Thread(target=_loop, args=(app, stop), name="centres-escalation", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


router = APIRouter(tags=["centres"], lifespan=lifespan)


class OutcomeBody(BaseModel):
    victim_reached: bool
    loss_prevented: float = Field(default=0.0, ge=0, le=1e12)
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    case_opened: bool = False
    note: str | None = Field(default=None, max_length=2000)


class CaseOutcomeBody(BaseModel):
    status: str = Field(pattern=r"^(open|investigating|solved|closed)$")
    suspects_arrested: int = Field(default=0, ge=0, le=100_000)
    loss_amount: float = Field(default=0.0, ge=0, le=1e12)
    recovered_amount: float = Field(default=0.0, ge=0, le=1e12)
    note: str | None = Field(default=None, max_length=2000)


@router.get("/v1/centres", summary="The centre hierarchy (roles: analyst, officer)")
def centres(request: Request, _: Principal = Depends(require_roles(Role.ANALYST, Role.OFFICER))) -> list[dict[str, Any]]:
    from forewarn.centres.config import list_officers

    with request.app.state.store.engine.connect() as conn:
        officers = list_officers(conn)
        out = []
        for c in repo.list_centres(conn):
            out.append({**c.model_dump(mode="json"),
                        "officers": [o["officer_id"] for o in officers if o["centre_id"] == c.centre_id]})
    return out


@router.get("/v1/tasks", summary="Task queue, most urgent first (roles: officer, analyst, bank)")
def list_tasks(request: Request, centre_id: str | None = None, status: str | None = None, kind: str | None = None,
               limit: Limit = 100, offset: Offset = 0,
               principal: Principal = Depends(require_roles(Role.OFFICER, Role.ANALYST, Role.BANK))) -> list[dict[str, Any]]:
    if principal.role is Role.BANK:
        kind = "payment_hold"  # banks see only the holds asked of them
    with request.app.state.store.engine.connect() as conn:
        return tk.list_tasks(conn, centre_id=centre_id, status=status, kind=kind, limit=limit, offset=offset)


@router.get("/v1/tasks/{task_id}", summary="One task with its history (roles: officer, analyst)")
def get_task(request: Request, task_id: str,
             _: Principal = Depends(require_roles(Role.OFFICER, Role.ANALYST))) -> dict[str, Any]:
    with request.app.state.store.engine.connect() as conn:
        found = tk.get_task(conn, task_id)
    if found is None:
        raise HTTPException(404, f"no task {task_id!r}")
    return found


@router.post("/v1/tasks/{task_id}/ack", summary="Acknowledge a task; stops its escalation (roles: officer, bank)")
def ack_task(request: Request, task_id: str,
             principal: Principal = Depends(require_roles(Role.OFFICER, Role.BANK))) -> dict[str, Any]:
    with request.app.state.store.begin() as conn:
        task = tk.get_task(conn, task_id)
        if task is None:
            raise HTTPException(404, f"no task {task_id!r}")
        if principal.role is Role.BANK and task["kind"] != "payment_hold":
            raise HTTPException(403, "a bank may acknowledge only payment-hold requests")
        try:
            result = tk.acknowledge(conn, task_id, principal.actor)
        except tk.TaskError as exc:
            raise HTTPException(409, str(exc)) from None
        audit.append(conn, principal.actor, "task.acknowledge", task_id, {"kind": task["kind"]})
    return result


@router.post("/v1/tasks/{task_id}/outcome", summary="Record an officer's outcome (roles: officer)")
def task_outcome(request: Request, task_id: str, body: OutcomeBody,
                 principal: Principal = Depends(require_roles(Role.OFFICER))) -> dict[str, Any]:
    with request.app.state.store.begin() as conn:
        try:
            result = tk.record_outcome(conn, task_id, principal.actor, tk.Outcome(
                victim_reached=body.victim_reached, loss_prevented=body.loss_prevented,
                currency=body.currency.upper() if body.currency else None, case_opened=body.case_opened,
                note=body.note))
        except tk.TaskError as exc:
            raise HTTPException(404 if "no task" in str(exc) else 409, str(exc)) from None
        audit.append(conn, principal.actor, "task.outcome", task_id, body.model_dump())
    return result


@router.post("/v1/cases/{case_id}/outcome", summary="Record a case outcome (roles: officer, analyst)")
def case_outcome(request: Request, case_id: str, body: CaseOutcomeBody,
                 principal: Principal = Depends(require_roles(Role.OFFICER, Role.ANALYST))) -> dict[str, Any]:
    with request.app.state.store.begin() as conn:
        try:
            case = cs.record_case_outcome(conn, case_id, principal.actor, cs.CaseOutcome(**body.model_dump()))
        except cs.CaseError as exc:
            raise HTTPException(404 if "no case" in str(exc) else 409, str(exc)) from None
        audit.append(conn, principal.actor, "case.outcome", case_id, body.model_dump())
    return case.model_dump(mode="json")


@router.get("/v1/case-statistics", summary="Case and outcome totals for statistics (roles: analyst, officer)")
def case_statistics(request: Request,
                    _: Principal = Depends(require_roles(Role.ANALYST, Role.OFFICER))) -> dict[str, Any]:
    with request.app.state.store.engine.connect() as conn:
        return cs.case_statistics(conn)
