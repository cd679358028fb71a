"""Building the FastAPI application of one node.

Errors are always JSON ``{"error": ..., "detail": ...}`` with a clear message; an unexpected
exception is logged on the server and answered with a generic 500, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from forewarn import __version__
from forewarn.config import Settings, load_settings
from forewarn.store import Store, open_store

log = logging.getLogger("forewarn.api")


def _validation_message(exc: RequestValidationError) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for err in exc.errors()[:50]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        out.append({"field": loc, "problem": str(err.get("msg", "invalid"))[:300]})
    return out


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The node's API. Pass ``store`` to share an open store (tests, the demo)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        app.state.store = store or open_store(settings)
        app.state.settings = settings
        from forewarn.firewall.service import preload_requested, prepare_worker

        if preload_requested():  # `forewarn firewall serve`: the index is in memory before the first call
            prepare_worker(app.state, settings, app.state.store)
        try:
            yield
        finally:
            firewall = getattr(app.state, "firewall", None)
            if firewall is not None:  # stops its refresher and writes the decisions still buffered
                firewall.close()
            if own:
                app.state.store.close()

    app = FastAPI(title="Forewarn node", version=__version__, lifespan=lifespan,
                  description="One country's Forewarn node: events in; indicators, alerts, warnings, cases out.")
    if store is not None:  # usable even without running the lifespan (TestClient without `with`)
        app.state.store = store
        app.state.settings = settings

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": "invalid request", "detail": _validation_message(exc)})

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(status_code=500, content={"error": "internal error; the node logged the details"})

    from forewarn.api.routes import core

    app.include_router(core.router)
    # Capability routers are registered here, one line each.
    from forewarn.api.routes import screening
    app.include_router(screening.router)
    from forewarn.api.routes import firewall
    app.include_router(firewall.router)
    app.add_middleware(firewall.FastDecisions)  # the per-call decision routes without the routing overhead
    from forewarn.api.routes import events
    app.include_router(events.router)
    from forewarn.api.routes import centres, forewarning
    app.include_router(forewarning.router)
    app.include_router(centres.router)
    from forewarn.api.routes import taxii
    app.include_router(taxii.router)
    from forewarn.api.routes import publishing
    from forewarn.web import pages
    app.include_router(publishing.router)
    app.include_router(pages.router)
    return app
