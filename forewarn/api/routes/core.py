"""Health and read access to the node's core records: indicators, alerts, warnings, cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import text

from forewarn import __version__
from forewarn.api.auth import Principal, Role, require_roles
from forewarn.model.indicators import Indicator, IndicatorType, InvalidIndicator, normalise_indicator
from forewarn.model.records import Alert, Case, Warning
from forewarn.store import repository as repo

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
READERS = (Role.ANALYST, Role.OFFICER)


@router.get("/health", tags=["node"], summary="Liveness and store reachability (no key needed)")
def health(request: Request) -> dict[str, object]:
    store = request.app.state.store
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        ok = True
    except Exception:  # the answer itself reports the failure
        ok = False
    return {"status": "ok" if ok else "degraded", "store": store.dialect if ok else "unreachable",
            "version": __version__, "country": request.app.state.settings.country}


@router.get("/v1/indicators", tags=["indicators"], summary="List indicators (roles: analyst, officer, telco, bank)")
def list_indicators(request: Request, type: IndicatorType | None = None, value: str | None = None,
                    limit: Limit = 100, offset: Offset = 0,
                    _: Principal = Depends(require_roles(*READERS, Role.TELCO, Role.BANK))) -> list[Indicator]:
    if value is not None and type is not None:
        try:
            value = normalise_indicator(type, value)
        except InvalidIndicator as exc:
            raise HTTPException(422, str(exc)) from None
    with request.app.state.store.engine.connect() as conn:
        return repo.list_indicators(conn, type_=type.value if type else None, value=value, limit=limit, offset=offset)


@router.get("/v1/alerts", tags=["alerts"], summary="List alerts, highest score first (roles: analyst, officer)")
def list_alerts(request: Request, status: str | None = None, role: str | None = None, centre_id: str | None = None,
                subject: str | None = None, limit: Limit = 100, offset: Offset = 0,
                _: Principal = Depends(require_roles(*READERS))) -> list[Alert]:
    with request.app.state.store.engine.connect() as conn:
        return repo.list_alerts(conn, status=status, role=role, centre_id=centre_id, subject=subject,
                                limit=limit, offset=offset)


@router.get("/v1/alerts/{alert_id}", tags=["alerts"], summary="One alert (roles: analyst, officer)")
def get_alert(request: Request, alert_id: str, _: Principal = Depends(require_roles(*READERS))) -> Alert:
    with request.app.state.store.engine.connect() as conn:
        found = repo.get_alert(conn, alert_id)
    if found is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return found


@router.get("/v1/warnings", tags=["warnings"], summary="List warnings (roles: analyst, officer)")
def list_warnings(request: Request, recipient: str | None = None, limit: Limit = 100, offset: Offset = 0,
                  _: Principal = Depends(require_roles(*READERS))) -> list[Warning]:
    with request.app.state.store.engine.connect() as conn:
        return repo.list_warnings(conn, recipient=recipient, limit=limit, offset=offset)


@router.get("/v1/warnings/{warning_id}", tags=["warnings"], summary="One warning (roles: analyst, officer)")
def get_warning(request: Request, warning_id: str, _: Principal = Depends(require_roles(*READERS))) -> Warning:
    with request.app.state.store.engine.connect() as conn:
        found = repo.get_warning(conn, warning_id)
    if found is None:
        raise HTTPException(404, f"no warning {warning_id!r}")
    return found


@router.get("/v1/cases", tags=["cases"], summary="List cases (roles: analyst, officer)")
def list_cases(request: Request, status: str | None = None, limit: Limit = 100, offset: Offset = 0,
               _: Principal = Depends(require_roles(*READERS))) -> list[Case]:
    with request.app.state.store.engine.connect() as conn:
        return repo.list_cases(conn, status=status, limit=limit, offset=offset)


@router.get("/v1/cases/{case_id}", tags=["cases"], summary="One case (roles: analyst, officer)")
def get_case(request: Request, case_id: str, _: Principal = Depends(require_roles(*READERS))) -> Case:
    with request.app.state.store.engine.connect() as conn:
        found = repo.get_case(conn, case_id)
    if found is None:
        raise HTTPException(404, f"no case {case_id!r}")
    return found
