"""Scam screening over HTTP: batches of messages, and call transcripts turn by turn.

``POST /v1/screen`` screens up to 1,000 messages. A call is a session resource:
``POST /v1/screen/calls/{call_id}/turns`` adds one turn and answers with the score so far and
whether the early warning has fired; ``DELETE /v1/screen/calls/{call_id}`` ends it. Sessions live
in this process's memory only (the transcript never touches the store); an alert is recorded in
the audit log without any content. Responses carry the fixed screening schema only.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from forewarn.api.auth import Principal, Role, require_roles
from forewarn.screening.artifact import ArtifactError
from forewarn.screening.calls import CallScreener
from forewarn.screening.screener import CHANNELS, Screener, ScreeningInputError, ScreenResult
from forewarn.store import audit

router = APIRouter(tags=["screening"])
SCREENERS = (Role.TELCO, Role.BANK, Role.ANALYST, Role.PARTNER)
MAX_BATCH = 1000
MAX_CALLS = 10_000
CALL_IDLE_SECONDS = 3600


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=20_000)
    id: str | None = Field(default=None, max_length=200)
    lang: str | None = Field(default=None, max_length=8)
    channel: Literal["sms", "chat", "email", "call_transcript"] = "sms"


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


class IndicatorOut(BaseModel):
    type: str
    value: str


class ResultOut(BaseModel):
    id: str | None
    score: float
    label: Literal["fraud", "spam", "ham"]
    category: str | None
    lang: str
    cues: list[str]
    indicators: list[IndicatorOut]


class BatchOut(BaseModel):
    results: list[ResultOut]


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: Literal["caller", "callee"]
    text: str = Field(max_length=5_000)
    lang: str | None = Field(default=None, max_length=8)


class TurnOut(BaseModel):
    call_id: str
    turn: int
    alerted: bool
    alert_turn: int | None
    result: ResultOut


class _Calls:
    """In-memory call sessions with an idle timeout and a cap, so abandoned calls do not pile up."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[tuple[str, str], tuple[CallScreener, float]] = {}

    def get(self, key: tuple[str, str], make: type[CallScreener], screener: Screener, lang: str | None) -> CallScreener:
        now = time.monotonic()
        with self.lock:
            for stale in [k for k, (_, seen) in self.sessions.items() if now - seen > CALL_IDLE_SECONDS]:
                del self.sessions[stale]
            if key not in self.sessions:
                if len(self.sessions) >= MAX_CALLS:
                    raise HTTPException(503, "too many open call sessions; end finished calls with DELETE")
                self.sessions[key] = (make(screener, lang=lang, call_id=key[1]), now)
            call = self.sessions[key][0]
            self.sessions[key] = (call, now)
            return call

    def end(self, key: tuple[str, str]) -> bool:
        with self.lock:
            return self.sessions.pop(key, None) is not None


def _screener() -> Screener:
    try:
        return Screener.default()
    except ArtifactError as exc:
        raise HTTPException(503, f"screening model unavailable: {exc}") from None


def _calls(request: Request) -> _Calls:
    state = request.app.state
    if not hasattr(state, "screening_calls"):
        state.screening_calls = _Calls()
    return state.screening_calls  # type: ignore[no-any-return]


def _out(result: ScreenResult) -> ResultOut:
    return ResultOut.model_validate(result.as_dict())


@router.post("/v1/screen", summary="Screen a batch of messages (roles: telco, bank, analyst, partner)")
def screen_batch(body: BatchIn, _: Principal = Depends(require_roles(*SCREENERS))) -> BatchOut:
    screener = _screener()
    try:
        results = screener.screen_many([m.model_dump() for m in body.messages])
    except ScreeningInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return BatchOut(results=[_out(r) for r in results])


@router.post("/v1/screen/calls/{call_id}/turns",
             summary="Add one turn of a call and get the early warning (roles: telco, bank, analyst, partner)")
def add_call_turn(request: Request, call_id: str, body: TurnIn,
                  principal: Principal = Depends(require_roles(*SCREENERS))) -> TurnOut:
    if not 0 < len(call_id) <= 128:
        raise HTTPException(422, "call_id must have 1–128 characters")
    call = _calls(request).get((principal.key_id, call_id), CallScreener, _screener(), body.lang)
    was_alerted = call.alerted
    try:
        result = call.add_turn(body.speaker, body.text)
    except ScreeningInputError as exc:
        raise HTTPException(422, str(exc)) from None
    if call.alerted and not was_alerted:
        with request.app.state.store.begin() as conn:
            audit.append(conn, principal.actor, "screen.call_alert", call_id,
                         {"turn": call.alert_turn, "score": result.score, "category": result.category})
    return TurnOut(call_id=call_id, turn=call.turns, alerted=call.alerted, alert_turn=call.alert_turn, result=_out(result))


@router.delete("/v1/screen/calls/{call_id}", status_code=204,
               summary="End a call session and forget its transcript (roles: telco, bank, analyst, partner)")
def end_call(request: Request, call_id: str, principal: Principal = Depends(require_roles(*SCREENERS))) -> None:
    if not _calls(request).end((principal.key_id, call_id)):
        raise HTTPException(404, f"no open call {call_id[:128]!r}")


__all__ = ["CHANNELS", "router"]
