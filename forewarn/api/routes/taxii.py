"""TAXII 2.1 server of a node (mounted at ``/taxii2/``) and the federation admin routes.

Partners authenticate with an API key of role ``partner`` whose name is the partner's node name in
the policy (``forewarn keys create --role partner --name TH``). Each partner sees only what this
node's policy lets it see; every page is signed by the node key (bound to the partner's request
nonce, the query it answers and its X-TAXII-Date-Added-* headers), and pushed objects must carry the partner's signature to skip the approval queue.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.federation import inbox, outbox, psi, stix
from forewarn.federation.bulk import gc_paused
from forewarn.federation.node import FederationError, FederationNode, load_node, policy_path
from forewarn.federation.policy import PolicyError
from forewarn.federation.signing import (
    H_NONCE,
    H_QUERY,
    TAXII_BOUND_HEADERS,
    SignatureError,
    canonical_query,
    remember,
    sign_headers,
    verify_headers,
)
from forewarn.federation.tables import federation_status
from forewarn.model.indicators import utcnow
from forewarn.store import audit

TAXII = "application/taxii+json;version=2.1"
API_ROOT = "forewarn"
MAX_PAGE = 50_000
router = APIRouter(tags=["federation"])
PartnerOrAdmin = Depends(require_roles(Role.PARTNER))
Analyst = Depends(require_roles(Role.ANALYST))


def _node(request: Request) -> FederationNode:
    """The node's federation context, reloaded when the policy file changes."""
    settings = request.app.state.settings
    path = policy_path(settings)
    mtime = path.stat().st_mtime if path.exists() else None
    cached = getattr(request.app.state, "federation_node", None)
    if cached is not None and getattr(request.app.state, "federation_policy_mtime", None) == mtime:
        return cached
    node = load_node(settings, request.app.state.store)
    request.app.state.federation_node = node
    request.app.state.federation_policy_mtime = mtime
    return node


def _error(status: int, title: str, description: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    return JSONResponse(status_code=status, content=body, media_type=TAXII)


def _accepts_taxii(request: Request) -> bool:
    accept = request.headers.get("accept", "*/*")
    return any(x in accept for x in ("application/taxii+json", "*/*", "application/*", "application/json"))


class TaxiiFailure(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _context(request: Request, principal: Principal) -> tuple[FederationNode, str | None]:
    """The node and the partner the caller speaks for (admins may name one with ?partner=)."""
    if not _accepts_taxii(request):
        raise TaxiiFailure(_error(406, "Not Acceptable", f"this server speaks {TAXII}"))
    try:
        node = _node(request)
    except FederationError as exc:
        raise TaxiiFailure(_error(503, "Federation not configured", str(exc))) from None
    partner: str | None
    if principal.role is Role.PARTNER:
        partner = principal.name.upper()
    else:
        partner = (request.query_params.get("partner") or "").upper() or None
    if partner is not None and partner not in node.policy.partners:
        raise TaxiiFailure(_error(403, "Unknown partner", f"{partner} is not a partner of node {node.name}"))
    return node, partner


def _collections(node: FederationNode, partner: str | None) -> list[dict[str, Any]]:
    can_push = bool(partner) and node.policy.partner(partner).inbound.allow_push if partner else False
    return [
        {"id": collection_id(node.name, "shared"), "title": f"Indicators from {node.name}",
         "description": "What this node's policy lets you see: indicators, observables and sightings.",
         "can_read": True, "can_write": False, "media_types": ["application/stix+json;version=2.1"]},
        {"id": collection_id(node.name, "inbox"), "title": f"Inbox of {node.name}",
         "description": "Push your indicators and sightings here (signed pushes skip the approval queue "
                        "when your trust weight allows).",
         "can_read": False, "can_write": can_push, "media_types": ["application/stix+json;version=2.1"]},
    ]


def collection_id(node: str, kind: str) -> str:
    return str(uuid.uuid5(stix.NAMESPACE, f"taxii-collection:{node}:{kind}"))


def _signed(node: FederationNode, partner: str | None, request: Request, body: dict[str, Any],
            extra_headers: dict[str, str] | None = None) -> Response:
    raw = orjson.dumps(body)  # compact UTF-8, as json.dumps(separators=(",", ":"), ensure_ascii=False)
    headers = dict(extra_headers or {})
    headers[H_QUERY] = canonical_query(request.query_params.multi_items())
    if node.key is not None:  # the signature binds the cursor headers and the query this page answers
        headers.update(sign_headers(node.key, partner or "ANY", raw, "taxii:" + request.url.path,
                                    nonce=request.headers.get(H_NONCE),
                                    bind={h: headers.get(h) for h in TAXII_BOUND_HEADERS}))
    return Response(content=raw, media_type=TAXII, headers=headers)


def _taxii(handler):  # type: ignore[no-untyped-def]
    """Turn TaxiiFailure into its TAXII error response."""
    import functools

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except TaxiiFailure as failure:
            return failure.response
    return wrapper


@router.get("/taxii2/", summary="TAXII 2.1 discovery (role: partner)")
@_taxii
def discovery(request: Request, principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    base = str(request.base_url).rstrip("/")
    return _signed(node, partner, request, {
        "title": f"Forewarn node {node.name}", "description": "Fraud indicators shared under this country's policy.",
        "default": f"{base}/taxii2/{API_ROOT}/", "api_roots": [f"{base}/taxii2/{API_ROOT}/"]})


def _root(api_root: str) -> None:
    if api_root != API_ROOT:
        raise TaxiiFailure(_error(404, "Unknown API root", f"this node has one API root: {API_ROOT}"))


@router.get("/taxii2/{api_root}/", summary="TAXII 2.1 API root (role: partner)")
@_taxii
def api_root_info(api_root: str, request: Request, principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    return _signed(node, partner, request, {"title": f"Forewarn {node.name}", "versions": [TAXII],
                                            "max_content_length": 104_857_600})


@router.get("/taxii2/{api_root}/collections/", summary="TAXII 2.1 collections (role: partner)")
@_taxii
def list_collections(api_root: str, request: Request, principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    return _signed(node, partner, request, {"collections": _collections(node, partner)})


def _collection(node: FederationNode, partner: str | None, collection: str) -> dict[str, Any]:
    for c in _collections(node, partner):
        if c["id"] == collection:
            return c
    raise TaxiiFailure(_error(404, "Unknown collection", f"no collection {collection[:40]!r} here"))


@router.get("/taxii2/{api_root}/collections/{collection}/", summary="One TAXII collection (role: partner)")
@_taxii
def get_collection(api_root: str, collection: str, request: Request, principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    return _signed(node, partner, request, _collection(node, partner, collection))


def _page_args(added_after: str | None, next_: str | None) -> tuple[datetime | None, int]:
    try:
        after = stix.parse_ts(added_after) if added_after else None
    except ValueError as exc:
        raise TaxiiFailure(_error(400, "Bad added_after", str(exc))) from None
    if next_ is not None and not next_.isdigit():
        raise TaxiiFailure(_error(400, "Bad next", "next must be the token from the previous page"))
    return after, int(next_ or 0)


def _readable_page(request: Request, principal: Principal, api_root: str, collection: str, added_after: str | None,
                   limit: int, next_: str | None, match_id: str | None, match_type: str | None,
                   ) -> tuple[FederationNode, str | None, outbox.Page]:
    node, partner = _context(request, principal)
    _root(api_root)
    if not _collection(node, partner, collection)["can_read"]:
        raise TaxiiFailure(_error(403, "Not readable", "this collection only accepts pushes"))
    after, after_seq = _page_args(added_after, next_)
    hash_key = node.credentials.hash_key(partner) if partner else None
    if next_ is None:
        # A listing's first page publishes what changed since the last one; its later pages (``next``)
        # page through that same snapshot rather than re-scanning every indicator per page. What changes
        # meanwhile gets a later date_added and comes with the next listing (``added_after``).
        with node.store.begin() as conn:
            outbox.refresh(conn, node.name)
    with node.store.engine.connect() as conn:
        pg = outbox.page(conn, node.policy, partner, hash_key=hash_key, added_after=after, after_seq=after_seq,
                         limit=limit, match_ids=match_id.split(",") if match_id else None,
                         match_types=match_type.split(",") if match_type else None)
    return node, partner, pg


def _date_headers(pg: outbox.Page) -> dict[str, str]:
    if pg.first_added is None or pg.last_added is None:
        return {}
    return {"X-TAXII-Date-Added-First": stix.ts_precise(pg.first_added),
            "X-TAXII-Date-Added-Last": stix.ts_precise(pg.last_added)}


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _envelope(pg: Any, items: list[Any]) -> dict[str, Any]:
    """A TAXII envelope: ``more``, ``next`` when there is one, ``objects`` when there are any."""
    body: dict[str, Any] = {"more": pg.more}
    if pg.next:
        body["next"] = pg.next
    if items:
        body["objects"] = items
    return body


@router.get("/taxii2/{api_root}/collections/{collection}/objects/", summary="Objects, paged (role: partner)")
@_taxii
def get_objects(api_root: str, collection: str, request: Request, added_after: str | None = None,
                limit: Limit = 1000, next: str | None = None,
                match_id: Annotated[str | None, Query(alias="match[id]")] = None,
                match_type: Annotated[str | None, Query(alias="match[type]")] = None,
                principal: Principal = PartnerOrAdmin) -> Response:
    with gc_paused():  # a page is ~100,000 acyclic objects, freed on return (see federation.bulk.gc_paused)
        return _objects_page(request, principal, api_root, collection, added_after, limit, next, match_id,
                             match_type)


def _objects_page(request: Request, principal: Principal, api_root: str, collection: str, added_after: str | None,
                  limit: int, next_: str | None, match_id: str | None, match_type: str | None) -> Response:
    node, partner, pg = _readable_page(request, principal, api_root, collection, added_after, limit, next_,
                                       match_id, match_type)
    return _signed(node, partner, request, _envelope(pg, pg.objects), _date_headers(pg))


@router.get("/taxii2/{api_root}/collections/{collection}/manifest/", summary="Manifest, paged (role: partner)")
@_taxii
def get_manifest(api_root: str, collection: str, request: Request, added_after: str | None = None,
                 limit: Limit = 1000, next: str | None = None,
                 match_id: Annotated[str | None, Query(alias="match[id]")] = None,
                 match_type: Annotated[str | None, Query(alias="match[type]")] = None,
                 principal: Principal = PartnerOrAdmin) -> Response:
    node, partner, pg = _readable_page(request, principal, api_root, collection, added_after, limit, next,
                                       match_id, match_type)
    return _signed(node, partner, request, _envelope(pg, pg.manifest), _date_headers(pg))


@router.get("/taxii2/{api_root}/collections/{collection}/objects/{object_id}/", summary="One object (role: partner)")
@_taxii
def get_object(api_root: str, collection: str, object_id: str, request: Request,
               principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    if not _collection(node, partner, collection)["can_read"]:
        return _error(403, "Not readable", "this collection only accepts pushes")
    with node.store.engine.connect() as conn:
        objs = outbox.get_versions(conn, node.policy, partner, object_id,
                                   node.credentials.hash_key(partner) if partner else None)
    if not objs:
        return _error(404, "Not found", f"no object {object_id[:80]!r} that you may see")
    return _signed(node, partner, request, {"more": False, "objects": objs})


@router.get("/taxii2/{api_root}/collections/{collection}/objects/{object_id}/versions/",
            summary="Versions of one object (role: partner)")
@_taxii
def get_versions(api_root: str, collection: str, object_id: str, request: Request,
                 principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    with node.store.engine.connect() as conn:
        objs = outbox.get_versions(conn, node.policy, partner, object_id,
                                   node.credentials.hash_key(partner) if partner else None)
    if not objs:
        return _error(404, "Not found", f"no object {object_id[:80]!r} that you may see")
    return _signed(node, partner, request, {"more": False, "versions": [o.get("modified", o.get("created")) for o in objs]})


@router.post("/taxii2/{api_root}/collections/{collection}/objects/", summary="Push objects (role: partner)")
async def add_objects(api_root: str, collection: str, request: Request,
                      principal: Principal = PartnerOrAdmin) -> Response:
    raw = await request.body()
    try:
        return _add_objects(api_root, collection, request, principal, raw)
    except TaxiiFailure as failure:
        return failure.response


def _add_objects(api_root: str, collection: str, request: Request, principal: Principal, raw: bytes) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    if partner is None:
        return _error(400, "Partner needed", "push as a partner (role partner), or pass ?partner= as admin")
    if not _collection(node, partner, collection)["can_write"]:
        return _error(403, "Not writable", f"node {node.name} does not accept pushes from {partner}")
    if "application/taxii+json" not in request.headers.get("content-type", ""):
        return _error(415, "Unsupported Media Type", f"send {TAXII}")
    try:
        envelope = orjson.loads(raw)
    except ValueError:
        return _error(400, "Bad JSON", "the body is not JSON")
    signed = False
    rules = node.policy.partner(partner)
    if request.headers.get("X-Forewarn-Signature"):
        try:
            nonce = verify_headers(request.headers, raw, partner=partner, public_key=rules.public_key, me=node.name,
                                   purpose="taxii-push:" + request.url.path,
                                   window_seconds=node.policy.replay_window_seconds)
        except SignatureError as exc:
            return _error(401, "Bad signature", str(exc))
        signed = True
    try:
        bundle_id, objects = inbox.bundle_objects(envelope)
        with node.store.begin() as conn:
            if signed:
                remember(conn, f"nonce:{partner}:{nonce}", partner)
            report = inbox.import_objects(conn, node.policy, partner, objects, signed=signed, bundle_id=bundle_id)
            status = _status_resource(report)
            conn.execute(federation_status.insert().values(status_id=status["id"], partner=partner,
                                                             created_at=utcnow(), report=status))
            audit.append(conn, principal.actor, "federation.push", partner,
                         {k: v for k, v in report.as_dict().items() if k != "rejected"})
    except (inbox.ImportRejected, SignatureError) as exc:
        return _error(422 if isinstance(exc, inbox.ImportRejected) else 409, "Rejected", str(exc))
    return JSONResponse(status_code=202, content=status, media_type=TAXII)


def _status_resource(report: inbox.ImportReport) -> dict[str, Any]:
    failures = [{"id": i, "message": r} for i, r in report.rejected]
    ok = report.objects - report.rejected_count
    return {"id": str(uuid.uuid4()), "status": "complete", "request_timestamp": stix.ts(utcnow()),
            "total_count": report.objects, "success_count": ok, "failure_count": report.rejected_count,
            "pending_count": 0, "failures": failures}


@router.get("/taxii2/{api_root}/status/{status_id}/", summary="Status of a push (role: partner)")
@_taxii
def get_status(api_root: str, status_id: str, request: Request, principal: Principal = PartnerOrAdmin) -> Response:
    node, partner = _context(request, principal)
    _root(api_root)
    table = federation_status
    with node.store.engine.connect() as conn:
        row = conn.execute(table.select().where(table.c.status_id == status_id)).first()
    if row is None or (partner is not None and row.partner != partner):
        return _error(404, "Not found", f"no status {status_id[:40]!r}")
    return _signed(node, partner, request, row.report)


# --- federation admin and PSI ---------------------------------------------------------------------

class PsiRequest(BaseModel):
    type: str = Field(description="indicator type to match, e.g. phone")
    elements: list[str] = Field(description="the caller's blinded elements, base64", max_length=2_000_000)


@router.post("/federation/v1/psi", summary="PSI responder: blind the caller's elements and ours (role: partner)")
def psi_respond(body: PsiRequest, request: Request, principal: Principal = PartnerOrAdmin) -> Any:
    try:
        node, partner = _context(request, principal)
    except TaxiiFailure as failure:
        return failure.response
    if partner is None:
        return JSONResponse(status_code=400, content={"error": "PSI is answered for a partner"})
    try:
        with node.store.engine.connect() as conn:
            answer = psi.respond(conn, node.policy, partner, body.type, body.elements)
    except psi.PsiError as exc:
        return JSONResponse(status_code=422, content={"error": str(exc)})
    with node.store.begin() as conn:
        audit.append(conn, principal.actor, "federation.psi", partner,
                     {"type": body.type, "their_count": len(body.elements), "our_count": len(answer["ours"])})
    return _signed(node, partner, request, answer)


@router.get("/federation/v1/node", summary="This node's federation identity and partners (role: analyst)")
def node_info(request: Request, _: Principal = Analyst) -> Any:
    try:
        return _node(request).info()
    except (FederationError, PolicyError) as exc:
        return JSONResponse(status_code=503, content={"error": str(exc)})


@router.get("/federation/v1/queue", summary="Partner indicators waiting for approval (role: analyst)")
def queue(request: Request, partner: str | None = None, status: str = "pending",
          limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
          _: Principal = Analyst) -> Any:
    with request.app.state.store.engine.connect() as conn:
        return inbox.list_queue(conn, partner, status, limit, offset)


class Decision(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=10_000)
    approve: bool
    note: str | None = Field(default=None, max_length=2000)


@router.post("/federation/v1/queue/decide", summary="Approve or reject queued partner indicators (role: analyst)")
def decide(body: Decision, request: Request, principal: Principal = Analyst) -> Any:
    try:
        node = _node(request)
    except FederationError as exc:
        return JSONResponse(status_code=503, content={"error": str(exc)})
    with node.store.begin() as conn:
        done = inbox.decide(conn, node.policy, body.ids, approve=body.approve, actor=principal.actor, note=body.note)
        audit.append(conn, principal.actor, "federation.approve" if body.approve else "federation.reject",
                     ",".join(map(str, body.ids[:50])), {"decided": done, "note": body.note})
    return {"decided": done}


@router.get("/federation/v1/provenance", summary="Who told us about a value, and when (role: analyst)")
def provenance(request: Request, type: str, value: str, _: Principal = Analyst) -> Any:
    with request.app.state.store.engine.connect() as conn:
        return inbox.provenance(conn, type, value)
