"""The analyst console at ``/console/``: log in with an API key, then see what the role allows.

Analysts triage alerts, read timelines, cases and number profiles, decide appeals and approve
bulletins; officers work their tasks and alerts; partner desks see federation and cross-border
flows; admins see everything, including the audit trail. Every write is audit-logged in the same
transaction and every form carries the session's CSRF token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from forewarn.api.auth import Role, lookup_key
from forewarn.model.indicators import TLP, utcnow
from forewarn.publishing import bulletins as bl
from forewarn.publishing import statistics as st
from forewarn.store import audit
from forewarn.web import panels, session
from forewarn.web.i18n import Translator
from forewarn.web.portal import limiter, safe_next, statistics_context
from forewarn.web.render import SECURITY_HEADERS, render, request_language
from forewarn.web.svg import call_graph, flow_diagram

router = APIRouter(prefix="/console", include_in_schema=False)

A, OF, P = Role.ANALYST, Role.OFFICER, Role.PARTNER
# Which roles see which page (admin sees every page); the navigation is built from this, in order.
PAGES: dict[str, tuple[str, frozenset[Role]]] = {
    "alerts": ("/console/", frozenset({A, OF})),
    "tasks": ("/console/tasks", frozenset({A, OF})),
    "victims": ("/console/victims", frozenset({A, OF})),
    "cases": ("/console/cases", frozenset({A, OF})),
    "entity": ("/console/entity", frozenset({A, OF})),
    "firewall": ("/console/firewall", frozenset({A})),
    "federation": ("/console/federation", frozenset({A, P})),
    "flows": ("/console/flows", frozenset({A, OF, P})),
    "statistics": ("/console/statistics", frozenset({A, OF, P})),
    "bulletins": ("/console/bulletins", frozenset({A})),
    "audit": ("/console/audit", frozenset()),
}
# Partner desks see indicators up to TLP:GREEN only; the node's own staff see everything.
ROLE_MAX_TLP = {Role.PARTNER: TLP.GREEN}


def _secret(request: Request) -> bytes:
    return session.session_secret(request.app.state.settings.data_dir)


def current_session(request: Request) -> session.Session | None:
    found = session.read(_secret(request), request.cookies.get(session.SESSION_COOKIE))
    if found is None:
        return None
    with request.app.state.store.engine.connect() as conn:
        if not session.key_is_active(conn, found.key_id):
            return None
    return found


def allowed(role: Role, page: str) -> bool:
    return role is Role.ADMIN or role in PAGES[page][1]


class Page:
    """The signed-in user on a page they may see: their session, CSRF token and navigation."""

    def __init__(self, request: Request, found: session.Session, page: str) -> None:
        self.request = request
        self.session = found
        self.page = page
        self.csrf = session.csrf_token(_secret(request), found)
        self.t = Translator(request_language(request))

    @property
    def actor(self) -> str:
        return self.session.principal.actor

    def render(self, name: str, context: dict[str, object] | None = None, status_code: int = 200) -> Response:
        nav = [(key, url) for key, (url, _) in PAGES.items() if allowed(self.session.role, key)]
        return render(self.request, name, {"console": True, "session": self.session, "csrf": self.csrf,
                                           "nav": nav, "page": self.page, **(context or {})},
                      status_code=status_code, headers={"Cache-Control": "no-store"})

    def error(self, message: str, status_code: int = 400) -> Response:
        return self.render("error.html", {"title_key": "error.bad_request", "message": message}, status_code)


def guard(request: Request, page: str) -> Page | Response:
    """The page for a signed-in user allowed to see it; else a redirect to log in or a 403 page."""
    found = current_session(request)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={target}", status_code=303, headers=SECURITY_HEADERS)
    view = Page(request, found, page)
    if not allowed(found.role, page):
        return view.render("error.html", {"title_key": "error.forbidden",
                                          "message": view.t("error.forbidden_detail", role=found.role.value)}, 403)
    return view


def guard_post(request: Request, page: str, csrf: str) -> Page | Response:
    view = guard(request, page)
    if isinstance(view, Page) and not session.csrf_ok(_secret(request), view.session, csrf):
        return view.error(view.t("error.csrf"), 403)
    return view


# --- login --------------------------------------------------------------------------------------

@router.get("/login")
def login_form(request: Request, next: str = "/console/") -> Response:  # noqa: A002
    return render(request, "console_login.html", {"next": safe_next(next, "/console/")})


@router.post("/login")
def login(request: Request, api_key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/console/") -> Response:  # noqa: A002
    t = Translator(request_language(request))
    allowed_now, wait = limiter(request).allow("login", request.client.host if request.client else "unknown")
    if not allowed_now:
        return render(request, "console_login.html", {"error": t("error.rate_limited_detail", seconds=int(wait) + 1),
                                                      "next": safe_next(next, "/console/")}, status_code=429)
    store = request.app.state.store
    principal = None
    if api_key.strip() and len(api_key) < 200:
        with store.engine.connect() as conn:
            principal = lookup_key(conn, api_key.strip())
    if principal is None or principal.role not in session.CONSOLE_ROLES:
        return render(request, "console_login.html", {"error": t("login.refused"), "next": safe_next(next, "/console/")},
                      status_code=401)
    cookie, issued = session.issue(_secret(request), principal)
    with store.begin() as conn:
        audit.append(conn, principal.actor, "console.login", principal.key_id, {"session": issued.session_id})
    landing = safe_next(next, "/console/")
    if landing == "/console/" and not allowed(principal.role, "alerts"):
        landing = next_page_for(principal.role)
    response = RedirectResponse(landing, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(session.SESSION_COOKIE, cookie, max_age=session.SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


def next_page_for(role: Role) -> str:
    for key, (url, _) in PAGES.items():
        if allowed(role, key):
            return url
    return "/console/login"


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    found = current_session(request)
    if found is not None and session.csrf_ok(_secret(request), found, csrf):
        with request.app.state.store.begin() as conn:
            audit.append(conn, found.principal.actor, "console.logout", found.key_id, {})
    response = RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(session.SESSION_COOKIE, path="/")
    return response


# --- alerts ----------------------------------------------------------------------------------------

def _filters(request: Request) -> panels.AlertFilters:
    q = request.query_params
    try:
        min_score = float(q["min_score"]) if q.get("min_score") else None
    except ValueError:
        min_score = None
    return panels.AlertFilters(status=q.get("status", "open") or None, role=q.get("role") or None,
                               scam_type=q.get("scam_type") or None, centre_id=q.get("centre_id") or None,
                               min_score=min_score)


@router.get("/")
def alerts(request: Request) -> Response:
    view = guard(request, "alerts")
    if not isinstance(view, Page):
        return view
    filters = _filters(request)
    with request.app.state.store.engine.connect() as conn:
        items = panels.alert_queue(conn, filters)
        counts = panels.alert_counts(conn)
        choices = panels.alert_filter_choices(conn)
    return view.render("console_alerts.html", {"alerts": items, "counts": counts, "filters": filters,
                                               "choices": choices, "notice": request.query_params.get("notice")})


@router.get("/alerts/rows")
def alert_rows(request: Request) -> Response:
    """The queue's rows alone, fetched every few seconds by ``console.js`` to keep the queue live."""
    view = guard(request, "alerts")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        items = panels.alert_queue(conn, _filters(request))
    return view.render("_alert_rows.html", {"alerts": items})


@router.post("/alerts/{alert_id}/triage")
def triage(request: Request, alert_id: str, action: Annotated[str, Form()] = "",
           note: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
           back: Annotated[str, Form()] = "/console/") -> Response:
    view = guard_post(request, "alerts", csrf)
    if not isinstance(view, Page):
        return view
    try:
        with request.app.state.store.begin() as conn:
            updated = panels.triage_alert(conn, alert_id, action, view.actor, note)
    except panels.PanelError as exc:
        return view.error(str(exc), 409)
    target = safe_next(back, "/console/")
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}notice={updated.alert_id}:{updated.status.value}", status_code=303)


# --- victims, cases, entities ---------------------------------------------------------------------------

@router.get("/victims")
def victim(request: Request, number: str = "") -> Response:
    view = guard(request, "victims")
    if not isinstance(view, Page):
        return view
    context: dict[str, object] = {"number": number[:64]}
    if number:
        try:
            kind, value = panels.parse_entity(number, request.app.state.settings.country)
        except panels.PanelError as exc:
            return view.render("console_victim.html", {**context, "error": str(exc)}, 422)
        with request.app.state.store.engine.connect() as conn:
            context.update(timeline=panels.victim_timeline(conn, value), value=value)
    else:
        with request.app.state.store.engine.connect() as conn:
            context["recent"] = panels.alert_queue(conn, panels.AlertFilters(status="all", role="victim"), limit=30)
    return view.render("console_victim.html", context)


@router.get("/cases")
def cases(request: Request, status: str = "") -> Response:
    view = guard(request, "cases")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        items = panels.list_cases(conn, status or None)
    return view.render("console_cases.html", {"cases": items, "status": status})


@router.get("/cases/{case_id}")
def case(request: Request, case_id: str) -> Response:
    view = guard(request, "cases")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        found = panels.case_view(conn, case_id[:64])
    if found is None:
        return view.render("error.html", {"title_key": "error.not_found", "message": case_id[:64]}, 404)
    return view.render("console_case.html", {"view": found, "missing": panels.Missing})


@router.get("/entity")
def entity(request: Request, value: str = "") -> Response:
    view = guard(request, "entity")
    if not isinstance(view, Page):
        return view
    context: dict[str, object] = {"value": value[:200]}
    if value:
        try:
            with request.app.state.store.engine.connect() as conn:
                profile = panels.entity_profile(conn, value, default_region=request.app.state.settings.country,
                                                max_tlp=ROLE_MAX_TLP.get(view.session.role, TLP.RED))
        except panels.PanelError as exc:
            return view.render("console_entity.html", {**context, "error": str(exc)}, 422)
        context["profile"] = profile
        if profile.graph is not None:
            context["graph_svg"] = call_graph(profile.graph, title=view.t("entity.graph"),
                                              link_prefix="/console/entity?value=")
    return view.render("console_entity.html", context)


# --- flows, tasks, firewall, federation ------------------------------------------------------------------

@router.get("/flows")
def flows(request: Request, days: int = 30) -> Response:
    view = guard(request, "flows")
    if not isinstance(view, Page):
        return view
    days = max(1, min(days, 365))
    with request.app.state.store.engine.connect() as conn:
        items = panels.cross_border_flows(conn, days=days)
    svg = flow_diagram(items[:60], title=view.t("flows.title"), empty_text=view.t("stats.no_data"))
    return view.render("console_flows.html", {"flows": items, "svg": svg, "days": days})


@router.get("/tasks")
def tasks(request: Request, centre_id: str = "", done: bool = False) -> Response:
    view = guard(request, "tasks")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        items = panels.officer_tasks(conn, centre_id=centre_id or None, include_done=done)
    return view.render("console_tasks.html", {"tasks": items, "missing": panels.Missing, "centre_id": centre_id,
                                              "done": done})


@router.get("/firewall")
def firewall(request: Request, action: str = "", kind: str = "") -> Response:
    view = guard(request, "firewall")
    if not isinstance(view, Page):
        return view
    try:
        with request.app.state.store.engine.connect() as conn:
            decisions = panels.firewall_decisions(conn, action=action, kind=kind)
            counts = panels.firewall_decision_counts(conn)
            appeals = panels.appeal_queue(conn)
    except panels.PanelError as exc:
        return view.error(str(exc), 400)
    return view.render("console_firewall.html", {"decisions": decisions, "counts": counts, "appeals": appeals,
                                                 "missing": panels.Missing, "action": action, "kind": kind,
                                                 "notice": request.query_params.get("notice")})


@router.post("/appeals/{appeal_id}/decide")
def decide_appeal(request: Request, appeal_id: str, decision: Annotated[str, Form()] = "",
                  note: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    view = guard_post(request, "firewall", csrf)
    if not isinstance(view, Page):
        return view
    try:
        with request.app.state.store.begin() as conn:
            panels.decide_appeal(conn, appeal_id, decision, view.actor, note or None)
    except (panels.PanelError, ValueError, LookupError) as exc:
        return view.error(str(exc), 409)
    return RedirectResponse(f"/console/firewall?notice={appeal_id}:{decision}", status_code=303)


@router.get("/federation")
def federation(request: Request) -> Response:
    view = guard(request, "federation")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        status = panels.federation_status(conn, settings=request.app.state.settings)
    return view.render("console_federation.html", {"status": status, "missing": panels.Missing})


# --- statistics, bulletins, audit ----------------------------------------------------------------------------

def _report(request: Request, bucket: str, days: int) -> st.StatisticsReport:
    with request.app.state.store.engine.connect() as conn:
        return st.compute_statistics(conn, start=utcnow() - timedelta(days=max(1, min(days, 3650))),
                                     bucket=bucket, public=False)  # type: ignore[arg-type]


@router.get("/statistics")
def statistics(request: Request, bucket: str = "week", days: int = 180) -> Response:
    view = guard(request, "statistics")
    if not isinstance(view, Page):
        return view
    try:
        report = _report(request, bucket, days)
    except st.StatisticsError as exc:
        return view.error(str(exc), 422)
    return view.render("statistics.html", {**statistics_context(report, view.t), "bucket": bucket, "days": days,
                                           "csv_url": f"/console/statistics.csv?bucket={bucket}&days={days}"})


@router.get("/statistics.csv")
def statistics_csv(request: Request, bucket: str = "week", days: int = 180) -> Response:
    view = guard(request, "statistics")
    if not isinstance(view, Page):
        return view
    try:
        report = _report(request, bucket, days)
    except st.StatisticsError as exc:
        return Response(f"error: {exc}\n", status_code=422, media_type="text/plain")
    return Response(st.to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="forewarn-statistics-internal.csv"',
                             "Cache-Control": "no-store"})


@router.get("/bulletins")
def bulletins(request: Request) -> Response:
    view = guard(request, "bulletins")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        items = bl.list_bulletins(conn, limit=50)
    lang = view.t.lang if view.t.lang in bl.BULLETIN_LANGUAGES else "en"
    return view.render("console_bulletins.html", {"bulletins": items, "bulletin_lang": lang,
                                                  "notice": request.query_params.get("notice")})


@router.post("/bulletins/draft")
def draft(request: Request, days: Annotated[int, Form()] = 7, csrf: Annotated[str, Form()] = "") -> Response:
    view = guard_post(request, "bulletins", csrf)
    if not isinstance(view, Page):
        return view
    try:
        with request.app.state.store.begin() as conn:
            made = bl.draft_bulletin(conn, view.actor, days=days)
    except bl.BulletinError as exc:
        return view.error(str(exc), 409)
    return RedirectResponse(f"/console/bulletins?notice={made.bulletin_id}:draft", status_code=303)


@router.post("/bulletins/{bulletin_id}/decide")
def decide_bulletin(request: Request, bulletin_id: str, decision: Annotated[str, Form()] = "",
                    csrf: Annotated[str, Form()] = "") -> Response:
    view = guard_post(request, "bulletins", csrf)
    if not isinstance(view, Page):
        return view
    if decision not in ("approve", "reject", "withdraw"):
        return view.error("decide a bulletin with approve, reject or withdraw")
    try:
        with request.app.state.store.begin() as conn:
            if decision == "withdraw":
                done = bl.withdraw_bulletin(conn, bulletin_id, view.actor)
            else:
                done = bl.decide_bulletin(conn, bulletin_id, view.actor, approve=decision == "approve")
    except bl.BulletinError as exc:
        return view.error(str(exc), 409)
    return RedirectResponse(f"/console/bulletins?notice={done.bulletin_id}:{done.status}", status_code=303)


@router.get("/audit")
def audit_trail(request: Request) -> Response:
    view = guard(request, "audit")
    if not isinstance(view, Page):
        return view
    with request.app.state.store.engine.connect() as conn:
        entries = panels.recent_audit(conn, limit=200)
        chain = audit.verify_chain(conn)
    return view.render("console_audit.html", {"entries": entries, "chain": chain})
