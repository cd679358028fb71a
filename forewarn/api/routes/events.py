"""``POST /v1/events``: providers (telcos, banks, partners) send batches of events over HTTP.

The body is a JSON array of events or ``{"events": [...]}``; each event carries its ``kind``.
Bad events are quarantined and reported by index; the rest are stored idempotently by event id;
the whole batch is one transaction, audit-logged. Citizens' reports come through the public
reporting route, not here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.ingest.loader import ingest_records

router = APIRouter()
MAX_EVENTS_PER_REQUEST = 10_000
MAX_BODY_BYTES = 32 << 20


class RowError(BaseModel):
    index: int = Field(description="position of the event in the batch (0-based)")
    reason: str


class EventsResult(BaseModel):
    batch_id: str
    received: int
    loaded: int
    duplicate: int
    quarantined: int
    errors: list[RowError]


async def _events_from_body(request: Request) -> list[Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"request body over {MAX_BODY_BYTES >> 20} MB; send smaller batches")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"request body over {MAX_BODY_BYTES >> 20} MB; send smaller batches")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(422, "the body is not valid JSON; send an array of events or {\"events\": [...]}") from None
    if isinstance(data, dict) and set(data) == {"events"}:
        data = data["events"]
    if not isinstance(data, list):
        raise HTTPException(422, "send a JSON array of events or {\"events\": [...]}")
    if not data:
        raise HTTPException(422, "the batch is empty")
    if len(data) > MAX_EVENTS_PER_REQUEST:
        raise HTTPException(413, f"{len(data):,} events in one request; the limit is {MAX_EVENTS_PER_REQUEST:,}")
    return data


@router.post("/v1/events", tags=["events"], response_model=EventsResult,
             summary="Send a batch of events (roles: telco, bank, partner)",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "oneOf": [{"type": "array", "items": {"type": "object"}},
                           {"type": "object", "properties": {"events": {"type": "array",
                                                                        "items": {"type": "object"}}}}]}}}}})
async def post_events(request: Request,
                      principal: Principal = Depends(require_roles(Role.TELCO, Role.BANK, Role.PARTNER))
                      ) -> EventsResult:
    events = await _events_from_body(request)
    result = await asyncio.to_thread(ingest_records, request.app.state.store, events,
                                     f"http:{principal.actor}", principal.actor)
    return EventsResult(batch_id=result.batch_id, received=result.received, loaded=result.loaded,
                        duplicate=result.duplicate, quarantined=result.quarantined,
                        errors=[RowError(**e) for e in result.errors])
