"""POST /v1/events: roles, counts, per-row errors, limits, audit."""

from __future__ import annotations

from sqlalchemy import text

from forewarn.api.routes.events import MAX_EVENTS_PER_REQUEST
from forewarn.store import repository as repo
from forewarn.store.audit import verify_chain

CALL = {"kind": "call", "event_id": "c-1", "caller": "+66812345678", "callee": "+8613800138000",
        "start": "2026-01-01T10:00:00Z", "duration_s": 12}


def test_requires_a_key_and_an_allowed_role(api, api_key):
    assert api.post("/v1/events", json=[CALL]).status_code == 401
    for role in ("analyst", "public", "officer"):
        response = api.post("/v1/events", json=[CALL], headers=api_key(role))
        assert response.status_code == 403, role
        assert "may not" in response.json()["error"]
    for role in ("telco", "bank", "partner", "admin"):
        assert api.post("/v1/events", json=[CALL], headers=api_key(role)).status_code == 200, role


def test_counts_errors_and_idempotency(api, api_key, store):
    headers = api_key("telco")
    body = {"events": [CALL, {**CALL, "event_id": "c-2"}, {**CALL, "event_id": "c-3", "caller": "NA"},
                       {"event_id": "nokind"}, "not an object", CALL]}
    first = api.post("/v1/events", json=body, headers=headers).json()
    assert (first["received"], first["loaded"], first["duplicate"], first["quarantined"]) == (6, 2, 1, 3)
    assert [e["index"] for e in first["errors"]] == [2, 3, 4]
    assert "invalid phone number 'NA'" in first["errors"][0]["reason"]
    second = api.post("/v1/events", json=[CALL], headers=headers).json()
    assert (second["loaded"], second["duplicate"]) == (0, 1)
    with store.engine.connect() as conn:
        assert repo.count_events(conn) == 2
        assert repo.count_quarantined(conn) == 3
        actions = conn.execute(text("SELECT action, actor, detail FROM audit_log WHERE action = 'events.ingest'")).all()
        assert verify_chain(conn).ok
    assert len(actions) == 2 and actions[0].actor == "telco:test-telco"


def test_bad_bodies_get_clear_errors(api, api_key):
    headers = api_key("bank")
    assert api.post("/v1/events", content=b"{nope", headers=headers).status_code == 422
    assert api.post("/v1/events", json={"rows": []}, headers=headers).status_code == 422
    assert api.post("/v1/events", json=[], headers=headers).status_code == 422
    too_many = api.post("/v1/events", json=[CALL] * (MAX_EVENTS_PER_REQUEST + 1), headers=headers)
    assert too_many.status_code == 413 and "limit" in too_many.json()["error"]
    huge = api.post("/v1/events", json=[{**CALL, "cell_id": "x" * 5_000_000}], headers=headers)
    assert huge.status_code == 200 and huge.json()["quarantined"] == 1
