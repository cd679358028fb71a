"""Bulletins and statistics over the API.

Published bulletins and the public (suppressed) statistics need no key; drafting, approving and
the internal statistics need an analyst (drafts and decisions are audit-logged by the library).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.publishing import bulletins as bl
from forewarn.publishing import statistics as st

router = APIRouter(tags=["publishing"])


class DraftRequest(BaseModel):
    days: int = Field(default=7, ge=1, le=90, description="how many days the bulletin covers")


class Decision(BaseModel):
    decision: Literal["approve", "reject", "withdraw"]


def _lang(lang: str | None) -> str | None:
    if lang is not None and lang not in bl.BULLETIN_LANGUAGES:
        raise HTTPException(422, f"unknown language {lang!r}; use one of {', '.join(bl.BULLETIN_LANGUAGES)}")
    return lang


@router.get("/v1/bulletins", summary="Published bulletins, newest first (no key needed)")
def list_published(request: Request, lang: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
    chosen = _lang(lang)
    with request.app.state.store.engine.connect() as conn:
        return [b.public_dict(chosen) for b in bl.list_bulletins(conn, status="published", limit=limit)]


@router.get("/v1/bulletins/drafts", summary="Bulletins of any status with their counts (roles: analyst)")
def list_all(request: Request, status: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
             _: Principal = Depends(require_roles(Role.ANALYST))) -> list[dict[str, Any]]:
    with request.app.state.store.engine.connect() as conn:
        items = bl.list_bulletins(conn, status=status, limit=limit)
    return [{**b.public_dict(), "status": b.status, "trends": b.trends, "created_by": b.created_by,
             "decided_by": b.decided_by} for b in items]


@router.get("/v1/bulletins/{bulletin_id}", summary="One published bulletin (no key needed)")
def get_published(request: Request, bulletin_id: str, lang: str | None = None) -> dict[str, Any]:
    chosen = _lang(lang)
    with request.app.state.store.engine.connect() as conn:
        found = bl.get_bulletin(conn, bulletin_id)
    if found is None or found.status != "published":
        raise HTTPException(404, f"no published bulletin {bulletin_id!r}")
    return found.public_dict(chosen)


@router.post("/v1/bulletins", status_code=201, summary="Draft a bulletin from trending scam types (roles: analyst)")
def draft(request: Request, body: DraftRequest,
          principal: Principal = Depends(require_roles(Role.ANALYST))) -> dict[str, Any]:
    try:
        with request.app.state.store.begin() as conn:
            made = bl.draft_bulletin(conn, principal.actor, days=body.days)
    except bl.BulletinError as exc:
        raise HTTPException(409, str(exc)) from None
    return {**made.public_dict(), "status": made.status, "trends": made.trends}


@router.post("/v1/bulletins/{bulletin_id}/decision", summary="Approve (publish), reject or withdraw (roles: analyst)")
def decide(request: Request, bulletin_id: str, body: Decision,
           principal: Principal = Depends(require_roles(Role.ANALYST))) -> dict[str, Any]:
    try:
        with request.app.state.store.begin() as conn:
            if body.decision == "withdraw":
                done = bl.withdraw_bulletin(conn, bulletin_id, principal.actor)
            else:
                done = bl.decide_bulletin(conn, bulletin_id, principal.actor, approve=body.decision == "approve")
    except bl.BulletinError as exc:
        raise HTTPException(409, str(exc)) from None
    return {**done.public_dict(), "status": done.status}


def _statistics(request: Request, start: datetime | None, end: datetime | None, bucket: str,
                public: bool) -> st.StatisticsReport:
    try:
        with request.app.state.store.engine.connect() as conn:
            return st.compute_statistics(conn, start=start, end=end, bucket=bucket, public=public)  # type: ignore[arg-type]
    except st.StatisticsError as exc:
        raise HTTPException(422, str(exc)) from None


Bucket = Annotated[str, Query(pattern="^(day|week|month)$")]


@router.get("/v1/statistics/public", summary="Public statistics, small counts suppressed (no key needed)")
def public_statistics(request: Request, start: datetime | None = None, end: datetime | None = None,
                      bucket: Bucket = "week", format: Literal["json", "csv"] = "json") -> Any:  # noqa: A002
    report = _statistics(request, start, end, bucket, public=True)
    if format == "csv":
        return PlainTextResponse(st.to_csv(report), media_type="text/csv; charset=utf-8")
    return st.report_as_dict(report)


@router.get("/v1/statistics", summary="Internal statistics, nothing suppressed (roles: analyst, officer)")
def statistics(request: Request, start: datetime | None = None, end: datetime | None = None,
               bucket: Bucket = "week", format: Literal["json", "csv"] = "json",  # noqa: A002
               _: Principal = Depends(require_roles(Role.ANALYST, Role.OFFICER))) -> Any:
    report = _statistics(request, start, end, bucket, public=False)
    if format == "csv":
        return PlainTextResponse(st.to_csv(report), media_type="text/csv; charset=utf-8")
    return st.report_as_dict(report)
