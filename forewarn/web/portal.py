"""The public portal at ``/``: check a number, URL or account; report a scam; verify a warning;
read bulletins (also as Atom) and the public statistics. No login; every action is rate-limited
per client IP; answers reveal only what :class:`forewarn.web.lookup.PortalPolicy` allows."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from forewarn.model.indicators import utcnow
from forewarn.publishing import bulletins as bl
from forewarn.publishing import statistics as st
from forewarn.web import lookup
from forewarn.web.i18n import LANGUAGE_COOKIE, LANGUAGE_NAMES, Translator
from forewarn.web.ratelimit import RateLimiter
from forewarn.web.render import SECURITY_HEADERS, render, request_language, static_file
from forewarn.web.svg import bar_chart, line_chart

router = APIRouter(include_in_schema=False)


def limiter(request: Request) -> RateLimiter:
    found = getattr(request.app.state, "portal_limiter", None)
    if found is None:
        found = request.app.state.portal_limiter = RateLimiter()
    return found  # type: ignore[no-any-return]


def policy(request: Request) -> lookup.PortalPolicy:
    return getattr(request.app.state, "portal_policy", None) or lookup.PortalPolicy()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limited(request: Request, action: str) -> Response | None:
    allowed, wait = limiter(request).allow(action, client_ip(request))
    if allowed:
        return None
    seconds = max(1, int(wait + 0.999))
    return render(request, "error.html", {"title_key": "error.rate_limited",
                                          "message": Translator(request_language(request))("error.rate_limited_detail",
                                                                                           seconds=seconds)},
                  status_code=429, headers={"Retry-After": str(seconds)})


def _country(request: Request) -> str:
    return str(request.app.state.settings.country)


def _scam_type_names(lang: str) -> dict[str, str]:
    kb = bl.knowledge_base()
    names = {k: (v.names.get(lang) or v.names.get("en") or bl.humanise(k)) for k, v in kb.items()}
    return dict(sorted(names.items(), key=lambda kv: kv[1]))


def _advice(scam_type: str | None, lang: str) -> str:
    kb = bl.knowledge_base()
    entry = kb.get(scam_type or "")
    advice = entry.advice.get(lang) if entry else None
    frame = bl.texts().get(lang) or bl.texts()["en"]
    return advice if advice and bl.publishable(advice) else frame["generic_advice"]


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    return static_file(path)


@router.get("/")
def home(request: Request) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    store = request.app.state.store
    with store.engine.connect() as conn:
        latest = bl.list_bulletins(conn, status="published", limit=3)
        report = st.compute_statistics(conn, start=utcnow() - timedelta(days=30), bucket="week", public=True)
    return render(request, "portal_home.html", {"bulletins": latest, "stats": report,
                                                "kinds": [k.value for k in lookup.PORTAL_KINDS]})


@router.get("/check")
def check(request: Request, kind: str = "phone", value: str = "") -> Response:
    if (blocked := limited(request, "check")) is not None:
        return blocked
    lang = request_language(request)
    context: dict[str, object] = {"kind": kind, "value": value[:200], "kinds": [k.value for k in lookup.PORTAL_KINDS]}
    if value:
        try:
            with request.app.state.store.engine.connect() as conn:
                answer = lookup.check_indicator(conn, kind, value, policy=policy(request),
                                                default_region=_country(request))
            context["answer"] = answer
            context["scam_type_name"] = (_scam_type_names(lang).get(answer.scam_type or "")
                                         or (bl.humanise(answer.scam_type) if answer.scam_type else None))
            context["advice"] = _advice(answer.scam_type, lang)
        except lookup.PortalInputError as exc:
            context["error"] = f"{exc.field}: {exc}"
            return render(request, "portal_check.html", context, status_code=422)
    return render(request, "portal_check.html", context)


@router.get("/report")
def report_form(request: Request) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    lang = request_language(request)
    return render(request, "portal_report.html", {"scam_types": _scam_type_names(lang),
                                                  "kinds": [k.value for k in lookup.REPORT_KINDS], "form": {}})


@router.post("/report")
def report_submit(request: Request, kind: Annotated[str, Form()] = "", value: Annotated[str, Form()] = "",
                  scam_type: Annotated[str, Form()] = "", loss: Annotated[str, Form()] = "",
                  currency: Annotated[str, Form()] = "", reporter: Annotated[str, Form()] = "",
                  website: Annotated[str, Form()] = "") -> Response:
    if (blocked := limited(request, "report")) is not None:
        return blocked
    lang = request_language(request)
    form = {"kind": kind, "value": value[:200], "scam_type": scam_type, "loss": loss[:20], "currency": currency[:3]}
    base = {"scam_types": _scam_type_names(lang), "kinds": [k.value for k in lookup.REPORT_KINDS], "form": form}
    if website:  # a field hidden from people: only form-filling robots fill it in
        return render(request, "portal_report.html", {**base, "error": "form: rejected"}, status_code=400)
    known = _scam_type_names(lang)
    try:
        citizen_report = lookup.build_report(kind, value, scam_type=scam_type if scam_type in known else None,
                                             loss=loss, currency=currency, reporter=reporter, lang=lang,
                                             default_region=_country(request))
        lookup.store_report(request.app.state.store, citizen_report)
    except lookup.PortalInputError as exc:
        return render(request, "portal_report.html", {**base, "error": f"{exc.field}: {exc}"}, status_code=422)
    return render(request, "portal_report.html", {**base, "form": {}, "done": True})


@router.get("/verify")
def verify(request: Request, code: str = "") -> Response:
    if (blocked := limited(request, "verify")) is not None:
        return blocked
    context: dict[str, object] = {"code": code[:40]}
    if code:
        try:
            with request.app.state.store.engine.connect() as conn:
                context["answer"] = lookup.verify_warning(conn, code)
        except lookup.PortalInputError as exc:
            context["error"] = f"{exc.field}: {exc}"
            return render(request, "portal_verify.html", context, status_code=422)
    return render(request, "portal_verify.html", context)


@router.get("/bulletins")
def bulletins(request: Request) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    with request.app.state.store.engine.connect() as conn:
        items = bl.list_bulletins(conn, status="published", limit=50)
    return render(request, "bulletins.html", {"bulletins": items, "bulletin_lang": _bulletin_lang(request)})


def _bulletin_lang(request: Request) -> str:
    wanted = request.query_params.get("lang")
    if wanted in bl.BULLETIN_LANGUAGES:
        return str(wanted)
    lang = request_language(request)
    return lang if lang in bl.BULLETIN_LANGUAGES else "en"


@router.get("/bulletins.atom")
def bulletins_atom(request: Request) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    lang = _bulletin_lang(request)
    with request.app.state.store.engine.connect() as conn:
        items = bl.list_bulletins(conn, status="published", limit=50)
    body = bl.atom_feed(items, base_url=str(request.base_url), lang=lang, country=_country(request),
                        title=Translator(request_language(request))("bulletins.feed_title"))
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/bulletins/{bulletin_id}")
def bulletin(request: Request, bulletin_id: str) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    with request.app.state.store.engine.connect() as conn:
        found = bl.get_bulletin(conn, bulletin_id[:64])
    if found is None or found.status != "published":
        return render(request, "error.html", {"title_key": "error.not_found", "message": bulletin_id[:64]},
                      status_code=404)
    return render(request, "bulletin.html", {"bulletin": found, "bulletin_lang": _bulletin_lang(request),
                                             "bulletin_languages": bl.BULLETIN_LANGUAGES})


def _plotted(cell: st.Cell, public: bool) -> float | None:
    """A cell's value for a chart; public charts leave suppressed cells out (a gap, not a number)."""
    if public and 0 < cell.support < st.SMALL_COUNT:
        return None
    return cell.value


def statistics_context(report: st.StatisticsReport, t: Translator) -> dict[str, object]:
    """Charts and tables of a report (shared by the portal and the console)."""
    charts = {}
    series = {t(f"metric.{name}"): [(p, _plotted(c, report.public)) for p, c in report.metrics[name].by_period.items()]
              for name in ("warnings", "cases_filed", "cases_solved", "suspects_arrested", "interceptions")
              if report.metrics[name].available}
    charts["counts"] = line_chart(series, title=t("stats.over_time"), empty_text=t("stats.no_data"))
    money = {t(f"metric.{name}"): [(p, _plotted(c, report.public)) for p, c in report.metrics[name].by_period.items()]
             for name in ("losses", "losses_prevented")}
    charts["money"] = line_chart(money, title=t("stats.money_over_time"), empty_text=t("stats.no_data"))
    warnings = report.metrics["warnings"]
    regions = list(warnings.by_region.items())[:12]
    charts["regions"] = bar_chart([(report.region_names.get(r, r), _plotted(c, report.public) or 0.0)
                                   for r, c in regions], title=t("stats.warnings_by_region"),
                                  shown=[c.shown for _, c in regions], empty_text=t("stats.no_data"))
    return {"report": report, "charts": charts, "metric_order": st.METRIC_ORDER}


@router.get("/statistics")
def statistics(request: Request, bucket: str = "week", days: int = 180) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    t = Translator(request_language(request))
    try:
        with request.app.state.store.engine.connect() as conn:
            report = st.compute_statistics(conn, start=utcnow() - timedelta(days=max(1, min(days, 3650))),
                                           bucket=bucket, public=True)  # type: ignore[arg-type]
    except st.StatisticsError as exc:
        return render(request, "error.html", {"title_key": "error.bad_request", "message": str(exc)}, status_code=422)
    return render(request, "statistics.html", {**statistics_context(report, t), "csv_url": f"/statistics.csv?bucket={bucket}&days={days}"})


@router.get("/statistics.csv")
def statistics_csv(request: Request, bucket: str = "week", days: int = 180) -> Response:
    if (blocked := limited(request, "page")) is not None:
        return blocked
    try:
        with request.app.state.store.engine.connect() as conn:
            report = st.compute_statistics(conn, start=utcnow() - timedelta(days=max(1, min(days, 3650))),
                                           bucket=bucket, public=True)  # type: ignore[arg-type]
    except st.StatisticsError as exc:
        return Response(f"error: {exc}\n", status_code=422, media_type="text/plain")
    return Response(st.to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="forewarn-statistics.csv"'})


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this node: never another site (an open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/") -> Response:  # noqa: A002 - the query's name
    response = RedirectResponse(safe_next(next), status_code=303, headers=SECURITY_HEADERS)
    if code in LANGUAGE_NAMES:
        response.set_cookie(LANGUAGE_COOKIE, code, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
