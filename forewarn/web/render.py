"""Rendering pages: the Jinja environment, the language of a request and the common context."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from forewarn.web.i18n import LANGUAGE_COOKIE, LANGUAGE_NAMES, Translator, choose_language

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

SECURITY_HEADERS = {
    # Everything comes from the node itself: no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _when(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


templates.env.filters["when"] = _when
templates.env.filters["day"] = lambda v: _when(v, False)
templates.env.tests["missing"] = lambda v: type(v).__name__ == "Missing"  # a panel whose capability is absent


def request_language(request: Request) -> str:
    return choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def render(request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    lang = request_language(request)
    full = {"t": Translator(lang), "lang": lang, "languages": LANGUAGE_NAMES, "path": request.url.path,
            "query": request.url.query, "console": False, "session": None, "csrf": "", "nav": []}
    full.update(context or {})
    response = templates.TemplateResponse(request, name, full, status_code=status_code,
                                          headers={**SECURITY_HEADERS, **(headers or {})})
    response.headers["Content-Language"] = lang
    response.headers.setdefault("Vary", "Accept-Language, Cookie")
    return response


def static_file(path: str) -> Response:
    """A file from ``static/`` (never outside it), cached for a day."""
    target = (STATIC_DIR / path).resolve()
    if STATIC_DIR.resolve() not in target.parents or not target.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if target.suffix == ".js":
        media_type = "text/javascript"
    return Response(target.read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
