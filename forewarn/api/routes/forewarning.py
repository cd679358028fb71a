"""Forewarning routes: public verification of warnings (no key: recipients, partner countries and
the public portal use them), risk timelines, and the delivery outbox's dead letters.

Public, no key:
- ``GET /v1/warnings/verify/{code}`` — is the warning with this code genuine? Answers
  ``{"code", "found", "genuine", "issuer", "issued_at", "language", "scam_type", "recipient_masked",
  "payload", "signature", "public_key"}``; optional query ``recipient`` (E.164) adds
  ``recipient_matches``. Never reveals the body or the full number.
- ``POST /v1/warnings/verify`` — the same with ``{"code", "text"?, "recipient"?}``; ``text`` (the
  message as received) adds ``text_matches``.
- ``GET /v1/signing-keys`` — the node's Ed25519 public keys, to check ``signature`` over the
  canonical JSON of ``payload`` offline (``forewarn.forewarning.signing.verify_signature``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.forewarning import outbox
from forewarn.forewarning import tables as ft
from forewarn.forewarning.signing import public_keys, verify_code
from forewarn.model.phone import InvalidPhoneNumber, normalise_phone
from forewarn.store import audit
from forewarn.store.db import utc

router = APIRouter(tags=["forewarning"])
Limit = Annotated[int, Query(ge=1, le=1000)]


class VerifyRequest(BaseModel):
    code: str = Field(min_length=4, max_length=20)
    text: str | None = Field(default=None, max_length=2000)
    recipient: str | None = Field(default=None, max_length=40)


def _recipient(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalise_phone(value)
    except InvalidPhoneNumber as exc:
        raise HTTPException(422, str(exc)) from None


def _verify(request: Request, code: str, text: str | None, recipient: str | None) -> dict[str, Any]:
    with request.app.state.store.engine.connect() as conn:
        result = verify_code(conn, code, text=text, recipient=_recipient(recipient))
    if not result.found:
        raise HTTPException(404, "no warning with this code: treat the message as NOT genuine and report it")
    return result.as_dict()


@router.get("/v1/warnings/verify/{code}", summary="Check a warning's verification code (public, no key)")
def verify_get(request: Request, code: str, recipient: str | None = None) -> dict[str, Any]:
    return _verify(request, code, None, recipient)


@router.post("/v1/warnings/verify", summary="Check a warning's code and text (public, no key)")
def verify_post(request: Request, body: VerifyRequest) -> dict[str, Any]:
    return _verify(request, body.code, body.text, body.recipient)


@router.get("/v1/signing-keys", summary="The node's warning-signing public keys (public, no key)")
def signing_keys(request: Request) -> list[dict[str, Any]]:
    with request.app.state.store.engine.connect() as conn:
        return public_keys(conn)


@router.get("/v1/timelines/{subscriber}", summary="A potential victim's risk timeline (roles: analyst, officer)")
def timeline(request: Request, subscriber: str, limit: Limit = 200,
             _: Principal = Depends(require_roles(Role.ANALYST, Role.OFFICER))) -> dict[str, Any]:
    number = _recipient(subscriber)
    with request.app.state.store.engine.connect() as conn:
        state = conn.execute(select(ft.fw_risk_state).where(ft.fw_risk_state.c.subscriber == number)).mappings().first()
        entries = conn.execute(select(ft.fw_timeline).where(ft.fw_timeline.c.subscriber == number)
                               .order_by(ft.fw_timeline.c.at).limit(limit)).mappings().all()
    if state is None and not entries:
        raise HTTPException(404, f"no risk timeline for {number}")
    return {"subscriber": number,
            "state": {**dict(state), "updated_at": utc(state["updated_at"]),
                      "first_contact_at": utc(state["first_contact_at"]),
                      "decisive_at": utc(state["decisive_at"])} if state else None,
            "entries": [{k: (utc(v) if k == "at" else v) for k, v in dict(e).items() if k != "id"} for e in entries]}


@router.get("/v1/outbox/status", summary="Outbox messages by status (roles: analyst)")
def outbox_status(request: Request, _: Principal = Depends(require_roles(Role.ANALYST))) -> dict[str, int]:
    with request.app.state.store.engine.connect() as conn:
        return outbox.status_counts(conn)


@router.get("/v1/outbox/dead-letters", summary="Messages that could not be delivered (roles: analyst)")
def dead_letters(request: Request, limit: Limit = 100,
                 _: Principal = Depends(require_roles(Role.ANALYST))) -> list[dict[str, Any]]:
    with request.app.state.store.engine.connect() as conn:
        return outbox.dead_letters(conn, limit=limit)


@router.post("/v1/outbox/{message_id}/requeue", summary="Retry a dead letter (roles: analyst)")
def requeue(request: Request, message_id: str,
            principal: Principal = Depends(require_roles(Role.ANALYST))) -> dict[str, Any]:
    with request.app.state.store.begin() as conn:
        if not outbox.requeue_dead(conn, message_id):
            raise HTTPException(404, f"no dead letter {message_id!r}")
        audit.append(conn, principal.actor, "outbox.requeue", message_id, {})
    return {"message_id": message_id, "status": "pending"}
