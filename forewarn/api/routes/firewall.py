"""Firewall decisions for telcos, appeals, citizen reports, verdicts and allow-lists.

Decisions are answered from memory (the worker's reputation snapshot, in ``app.state.firewall``,
built at start-up by ``forewarn firewall serve`` or on first use); counting the attempt in the live
counters and logging the decision happen off the request path, in batches. Every write (appeal, decision, report, verdict, allow-list change) is audited in the same
transaction.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from forewarn.api.auth import Principal, Role, api_key_header, authorize, require_roles
from forewarn.firewall.engine import Decision, DecisionInputError
from forewarn.firewall.service import FirewallService, service_for
from forewarn.model.events import CitizenReport
from forewarn.model.indicators import IndicatorType, utcnow
from forewarn.model.records import new_id
from forewarn.reputation import allowlist, appeals
from forewarn.reputation.reports import record_reports
from forewarn.store import audit

router = APIRouter(tags=["firewall"])
TELCO = (Role.TELCO,)
ANALYST = (Role.ANALYST,)
Time = datetime | float | None
Q = TypeVar("Q", bound=BaseModel)


class CallQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: str = Field(max_length=64, description="the presented caller ID (E.164 preferred)")
    callee: str = Field(max_length=64)
    ingress: Literal["domestic", "international", "roaming"] = "domestic"
    claimed_country: str | None = Field(default=None, max_length=2, min_length=2)
    time: Time = Field(default=None, description="ISO 8601 or epoch seconds; default now")


class SmsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender: str = Field(max_length=64, description="E.164 number or alphanumeric sender ID")
    recipient: str = Field(max_length=64)
    text: str = Field(default="", max_length=10_000)
    time: Time = None


class DecisionOut(BaseModel):
    action: Literal["allow", "mark", "block"]
    label: str | None
    reasons: list[str]
    score: float
    ttl_s: int


async def firewall_service(request: Request) -> FirewallService:
    """The worker's firewall (async: answered on the event loop, no thread hop once built)."""
    app = request.app
    return service_for(app.state, app.state.settings, app.state.store)


def _hot_route_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that parses its JSON body and checks its key itself: the body's schema
    is the model's, and the key is the same ``X-API-Key`` scheme as every other route's."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}},
            "security": [{api_key_header.scheme_name: []}]}


def _service(request: Request) -> FirewallService:
    state = request.app.state
    svc = getattr(state, "firewall", None)
    return svc if svc is not None else service_for(state, state.settings, state.store)


def _parse(model: type[Q], body: bytes) -> Q:
    """Parse and validate a JSON body in one pass (pydantic-core); errors answer 422 like any route's."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


def _answer(decision: Decision) -> Response:
    # the decision's own encoding: no response-model re-validation on the hot path
    return Response(orjson.dumps(decision.as_dict()), media_type="application/json")

# The decision routes are ``async`` and do their own body parsing and encoding: the decision is
# answered from memory on the event loop with no thread hop, and the attempt is counted after
# the answer by the counters' background applier.

@router.post("/v1/firewall/call", summary="Decide one call: allow, mark or block (role: telco)",
             response_model=DecisionOut, openapi_extra=_hot_route_doc(CallQuery))
async def decide_call(request: Request) -> Response:
    await authorize(request, *TELCO)
    query = _parse(CallQuery, await request.body())
    try:
        decision = await _service(request).firewall.decide_call_async(query.caller, query.callee, query.ingress,
                                                                      query.claimed_country, query.time)
    except DecisionInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return _answer(decision)


@router.post("/v1/firewall/sms", summary="Decide one SMS: allow, mark or block (role: telco)",
             response_model=DecisionOut, openapi_extra=_hot_route_doc(SmsQuery))
async def decide_sms(request: Request) -> Response:
    await authorize(request, *TELCO)
    query = _parse(SmsQuery, await request.body())
    try:
        decision = await _service(request).firewall.decide_sms_async(query.sender, query.recipient, query.text,
                                                                     query.time)
    except DecisionInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return _answer(decision)


class FastDecisions:
    """ASGI middleware that hands ``POST /v1/firewall/call`` and ``/sms`` straight to their endpoint
    functions above, skipping route matching over every other route and FastAPI's dependency
    machinery (together most of a decision's cost). The endpoints are the very same functions the
    router documents and serves when this middleware is absent; their errors are answered by the
    application's own exception handlers, so the answers are identical either way."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.endpoints: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/v1/firewall/call": decide_call, "/v1/firewall/sms": decide_sms}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (self.endpoints.get(scope["path"])
                    if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path") else None)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except (HTTPException, RequestValidationError) as exc:
            handlers = scope["app"].exception_handlers
            handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


@router.post("/v1/firewall/call/batch", summary="Decide up to 1,000 calls in one request (role: telco)")
def decide_call_batch(queries: Annotated[list[CallQuery], Field(max_length=1000)],
                      svc: FirewallService = Depends(firewall_service),
                      _: Principal = Depends(require_roles(*TELCO))) -> list[DecisionOut]:
    try:
        decisions = svc.firewall.decide_calls([q.model_dump() for q in queries])
    except DecisionInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return [DecisionOut(**d.as_dict()) for d in decisions]


@router.get("/v1/firewall/status", summary="Index size, refresh state, counters and screening in use "
                                           "(roles: telco, analyst)")
def status(svc: FirewallService = Depends(firewall_service),
           _: Principal = Depends(require_roles(Role.TELCO, Role.ANALYST))) -> dict[str, Any]:
    return svc.stats()


# --- appeals ------------------------------------------------------------------------------------

class _RateLimiter:
    """Sliding one-minute window per client address, per worker process."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, per_minute: int) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= per_minute:
                return False
            hits.append(now)
            if len(self._hits) > 50_000:
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - 60}
            return True


def _limiter(request: Request, name: str) -> _RateLimiter:
    """One limiter per app and purpose, kept in ``app.state`` like the firewall itself."""
    attr = f"firewall_{name}_limiter"
    limiter = getattr(request.app.state, attr, None)
    if limiter is None:
        limiter = _RateLimiter()
        setattr(request.app.state, attr, limiter)
    return limiter


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicator_type: Literal["phone", "sender_id", "url", "domain"] = "phone"
    value: str = Field(max_length=2048, description="the number, sender ID, URL or domain marked or blocked")
    contact: str = Field(max_length=200, description="how the analyst can reach the owner")
    statement: str = Field(max_length=appeals.MAX_STATEMENT, description="why the mark is wrong")


class AppealDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["upheld", "rejected"]
    reason: str = Field(min_length=1, max_length=appeals.MAX_STATEMENT)


@router.post("/v1/appeals", status_code=201, tags=["appeals"],
             summary="Appeal a mark or block (public, no key; rate-limited per address)")
def submit_appeal(body: AppealIn, request: Request, svc: FirewallService = Depends(firewall_service)) -> dict[str, Any]:
    client = request.client.host if request.client else "unknown"
    if not _limiter(request, "appeal").allow(client, svc.policy.appeal_submit_per_minute):
        raise HTTPException(429, "too many appeals from this address; try again in a minute",
                            headers={"Retry-After": "60"})
    try:
        with request.app.state.store.begin() as conn:
            row = appeals.submit_appeal(conn, body.indicator_type, body.value, body.contact, body.statement,
                                        deadline_hours=svc.policy.appeal_deadline_hours, actor="public")
    except appeals.AppealError as exc:
        raise HTTPException(422, str(exc)) from None
    # the owner learns that the value was already decided (not by whom, nor the other appeals' contacts)
    verdict = row["prior"]["latest_verdict"]
    return {"appeal_id": row["appeal_id"], "status": row["status"], "value": row["value"],
            "deadline_at": row["deadline_at"].isoformat(),
            "previous_verdict": ({"verdict": verdict["verdict"], "decided_at": verdict["decided_at"].isoformat()}
                                 if verdict else None)}


@router.get("/v1/appeals", tags=["appeals"], summary="List appeals, nearest deadline first (role: analyst)")
def list_appeals(request: Request, status: Literal["pending", "upheld", "rejected"] | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
                 _: Principal = Depends(require_roles(*ANALYST))) -> list[dict[str, Any]]:
    with request.app.state.store.engine.connect() as conn:
        return appeals.list_appeals(conn, status, limit, offset)


@router.get("/v1/appeals/{appeal_id}", tags=["appeals"], summary="One appeal (role: analyst)")
def get_appeal(appeal_id: str, request: Request, _: Principal = Depends(require_roles(*ANALYST))) -> dict[str, Any]:
    with request.app.state.store.engine.connect() as conn:
        found = appeals.get_appeal(conn, appeal_id)
    if found is None:
        raise HTTPException(404, f"no appeal {appeal_id!r}")
    return found


@router.post("/v1/appeals/{appeal_id}/decision", tags=["appeals"],
             summary="Uphold (lift) or reject (keep) an appeal, with a reason (role: analyst)")
def decide_appeal(appeal_id: str, body: AppealDecisionIn, request: Request,
                  svc: FirewallService = Depends(firewall_service),
                  principal: Principal = Depends(require_roles(*ANALYST))) -> dict[str, Any]:
    try:
        with request.app.state.store.begin() as conn:
            result = appeals.decide_appeal(conn, appeal_id, body.decision, body.reason, actor=principal.actor)
    except appeals.AppealError as exc:
        raise HTTPException(404 if "no appeal" in str(exc) else 409, str(exc)) from None
    svc.refresh()  # this worker at once; the others within the policy's refresh interval
    return result


# --- citizen reports and verdicts ------------------------------------------------------------------

class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reporter: str | None = Field(default=None, max_length=64, description="the reporter's number, if given")
    indicator_type: IndicatorType = IndicatorType.PHONE
    indicator_value: str = Field(max_length=2048)
    verdict: Literal["scam", "not_scam"] = "scam"
    scam_type: str | None = Field(default=None, max_length=80)


@router.post("/v1/reputation/reports", status_code=201, tags=["reputation"],
             summary="A citizen's scam / not-scam report (role: public; rate-limited per reporter)")
def submit_report(body: ReportIn, request: Request, principal: Principal = Depends(require_roles(Role.PUBLIC)),
                  ) -> dict[str, Any]:
    who = body.reporter or (request.client.host if request.client else "unknown")
    if not _limiter(request, "report").allow(who, 10):
        raise HTTPException(429, "too many reports; try again in a minute", headers={"Retry-After": "60"})
    try:
        report = CitizenReport(event_id=new_id("rep"), reporter=body.reporter, indicator_type=body.indicator_type,
                               indicator_value=body.indicator_value, verdict=body.verdict, scam_type=body.scam_type,
                               reported_at=utcnow(), source="api")
    except ValueError as exc:
        raise HTTPException(422, str(exc).splitlines()[-1] if str(exc) else "invalid report") from None
    with request.app.state.store.begin() as conn:
        record_reports(conn, [report])
        audit.append(conn, principal.actor, "report.submit", report.indicator_value,
                     {"report_id": report.event_id, "verdict": report.verdict})
    return {"report_id": report.event_id, "value": report.indicator_value}


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicator_type: Literal["phone", "sender_id", "url", "domain"] = "phone"
    value: str = Field(max_length=2048)
    verdict: Literal["scam", "not_scam"]
    reason: str = Field(min_length=1, max_length=appeals.MAX_STATEMENT)


@router.post("/v1/reputation/verdicts", status_code=201, tags=["reputation"],
             summary="An analyst's verdict on a value; settles its citizen reports (role: analyst)")
def record_verdict(body: VerdictIn, request: Request, svc: FirewallService = Depends(firewall_service),
                   principal: Principal = Depends(require_roles(*ANALYST))) -> dict[str, Any]:
    try:
        with request.app.state.store.begin() as conn:
            result = appeals.record_verdict(conn, body.indicator_type, body.value, body.verdict, body.reason,
                                            actor=principal.actor)
    except appeals.AppealError as exc:
        raise HTTPException(422, str(exc)) from None
    svc.refresh()
    return result


# --- allow-lists --------------------------------------------------------------------------------

class AllowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["emergency", "government", "sender_id", "number", "personal"]
    value: str = Field(max_length=64)
    owner: str | None = Field(default=None, max_length=64, description="the subscriber, for personal entries")
    note: str | None = Field(default=None, max_length=300)


@router.post("/v1/firewall/allowlist", status_code=201, tags=["firewall"],
             summary="Add an allow-list entry; it wins over every block rule (roles: analyst, telco)")
def add_allow(body: AllowIn, request: Request, svc: FirewallService = Depends(firewall_service),
              principal: Principal = Depends(require_roles(Role.ANALYST, Role.TELCO))) -> dict[str, Any]:
    if principal.role is Role.TELCO and body.kind != "personal":
        raise HTTPException(403, "a telco key may only add subscribers' personal allow-list entries")
    try:
        with request.app.state.store.begin() as conn:
            row = allowlist.add_entry(conn, body.kind, body.value, actor=principal.actor, owner=body.owner,
                                      note=body.note, default_region=svc.policy.country)
    except allowlist.AllowListError as exc:
        raise HTTPException(422, str(exc)) from None
    svc.refresh()
    return row


@router.get("/v1/firewall/allowlist", tags=["firewall"], summary="List allow-list entries (role: analyst)")
def list_allow(request: Request, kind: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
               _: Principal = Depends(require_roles(*ANALYST))) -> list[dict[str, Any]]:
    with request.app.state.store.engine.connect() as conn:
        return allowlist.list_entries(conn, kind, limit)
