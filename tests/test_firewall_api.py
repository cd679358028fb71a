"""The HTTP interface: decisions for the telco role, appeals (public, rate-limited) decided by an
analyst and audited, citizen reports, verdicts and allow-lists."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from forewarn.model.indicators import Indicator, utcnow
from forewarn.store import audit
from forewarn.store import repository as repo

LISTED = "+8613800138000"
CALLEE = "+8613700137000"


def _seed(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="behaviour.det"))


def test_call_and_sms_decisions_need_the_telco_role(api: Any, api_key: Any, store: Any) -> None:
    _seed(store)
    telco = api_key("telco")
    body = {"caller": LISTED, "callee": CALLEE, "ingress": "domestic", "claimed_country": None,
            "time": "2026-11-28T10:00:00Z"}
    answer = api.post("/v1/firewall/call", json=body, headers=telco)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert set(data) == {"action", "label", "reasons", "score", "ttl_s"}
    assert data["action"] == "block" and data["label"] == "疑似诈骗"
    assert api.post("/v1/firewall/call", json=body).status_code == 401
    assert api.post("/v1/firewall/call", json=body, headers=api_key("bank")).status_code == 403
    sms = api.post("/v1/firewall/sms", json={"sender": "+8613600136000", "recipient": CALLEE, "text": "hi",
                                             "time": 1795000000}, headers=telco)
    assert sms.status_code == 200 and sms.json()["action"] == "allow"
    batch = api.post("/v1/firewall/call/batch", json=[body, {**body, "caller": "+8613100131000"}], headers=telco)
    assert [d["action"] for d in batch.json()] == ["block", "allow"]


def test_bad_requests_get_clear_errors(api: Any, api_key: Any) -> None:
    telco = api_key("telco")
    bad = api.post("/v1/firewall/call", json={"caller": LISTED, "callee": "nope"}, headers=telco)
    assert bad.status_code == 422 and "callee" in bad.json()["error"]
    wrong = api.post("/v1/firewall/call", json={"caller": LISTED, "callee": CALLEE, "ingress": "moon"}, headers=telco)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["field"] == "ingress"


def test_appeal_flow_over_http(api: Any, api_key: Any, store: Any) -> None:
    _seed(store)
    telco, analyst = api_key("telco"), api_key("analyst")
    call = {"caller": LISTED, "callee": CALLEE}
    assert api.post("/v1/firewall/call", json=call, headers=telco).json()["action"] == "block"
    submitted = api.post("/v1/appeals", json={"value": LISTED, "contact": "owner@example.org",
                                              "statement": "my bakery's number"})
    assert submitted.status_code == 201, submitted.text
    appeal_id = submitted.json()["appeal_id"]
    assert api.post(f"/v1/appeals/{appeal_id}/decision", json={"decision": "upheld", "reason": "ok"},
                    headers=telco).status_code == 403
    listed = api.get("/v1/appeals?status=pending", headers=analyst).json()
    assert [a["appeal_id"] for a in listed] == [appeal_id]
    decided = api.post(f"/v1/appeals/{appeal_id}/decision",
                       json={"decision": "upheld", "reason": "verified business line"}, headers=analyst)
    assert decided.status_code == 200 and decided.json()["status"] == "upheld"
    assert api.post("/v1/firewall/call", json=call, headers=telco).json()["action"] == "allow"
    again = api.post(f"/v1/appeals/{appeal_id}/decision", json={"decision": "rejected", "reason": "x"},
                     headers=analyst)
    assert again.status_code == 409
    with store.engine.connect() as conn:
        entries = conn.execute(audit.t.audit_log.select()).fetchall()
    decision = [e for e in entries if e.action == "appeal.decide"]
    assert decision and decision[0].actor.startswith("analyst:") and decision[0].detail["reason"]


def test_public_appeals_are_rate_limited(api: Any) -> None:
    codes = [api.post("/v1/appeals", json={"value": f"+6681234{i:04d}", "contact": "c", "statement": "s"}).status_code
             for i in range(8)]
    assert codes[:5] == [201] * 5 and 429 in codes[5:]


def test_reports_verdicts_and_allow_list_over_http(api: Any, api_key: Any, store: Any) -> None:
    public, analyst, telco = api_key("public"), api_key("analyst"), api_key("telco")
    report = api.post("/v1/reputation/reports", json={"reporter": "+66810000001", "indicator_value": "+66812345678"},
                      headers=public)
    assert report.status_code == 201, report.text
    verdict = api.post("/v1/reputation/verdicts", json={"value": "+66812345678", "verdict": "scam",
                                                        "reason": "police case 42"}, headers=analyst)
    assert verdict.status_code == 201 and verdict.json()["reports_settled"] == 1
    call = {"caller": "+66812345678", "callee": CALLEE}
    assert api.post("/v1/firewall/call", json=call, headers=telco).json()["action"] == "block"
    personal = api.post("/v1/firewall/allowlist", json={"kind": "personal", "value": "+66812345678",
                                                        "owner": CALLEE}, headers=telco)
    assert personal.status_code == 201, personal.text
    assert api.post("/v1/firewall/allowlist", json={"kind": "government", "value": "+66812345678"},
                    headers=telco).status_code == 403
    decision = api.post("/v1/firewall/call", json=call, headers=telco).json()
    assert decision["action"] == "allow" and decision["reasons"][0] == "allowlist.personal"
    status = api.get("/v1/firewall/status", headers=analyst).json()
    assert status["indicators"] >= 1 and status["allow_list_entries"] == 1


def test_the_decision_routes_answer_like_any_route_and_are_documented(api: Any, api_key: Any) -> None:
    telco = api_key("telco")
    broken = api.post("/v1/firewall/call", content=b'{"caller": ', headers={**telco, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"] == "invalid request"
    extra = api.post("/v1/firewall/sms", json={"sender": "BANKX", "recipient": CALLEE, "colour": "red"}, headers=telco)
    assert extra.status_code == 422 and extra.json()["detail"][0]["field"] == "colour"
    bad_recipient = api.post("/v1/firewall/sms", json={"sender": "BANKX", "recipient": "nobody"}, headers=telco)
    assert bad_recipient.status_code == 422 and "recipient" in bad_recipient.json()["error"]
    unknown = api.post("/v1/firewall/call", json={"caller": LISTED, "callee": CALLEE}, headers={"X-API-Key": "fw_nope"})
    assert unknown.status_code == 401 and unknown.json() == {"error": "unknown or revoked API key"}
    assert api.get("/v1/firewall/call").status_code == 405  # other methods still reach the router
    spec = api.get("/openapi.json").json()
    for path, model in (("/v1/firewall/call", "caller"), ("/v1/firewall/sms", "sender")):
        operation = spec["paths"][path]["post"]
        assert model in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
        assert operation["security"] == [{"APIKeyHeader": []}]
        assert "200" in operation["responses"]


def test_a_revoked_key_stops_within_the_cache_ttl(api: Any, store: Any, monkeypatch: Any) -> None:
    from forewarn.api import auth

    monkeypatch.setattr(auth.key_cache, "ttl_s", 0.3)
    with store.begin() as conn:
        key_id, secret = auth.create_key(conn, "telco", "switch")
    call = {"caller": LISTED, "callee": CALLEE}
    assert api.post("/v1/firewall/call", json=call, headers={"X-API-Key": secret}).status_code == 200
    with store.begin() as conn:  # revoked directly in the store, as another process would
        conn.execute(auth.t.api_keys.update().where(auth.t.api_keys.c.key_id == key_id).values(revoked_at=utcnow()))
    deadline = time.monotonic() + 5
    while api.post("/v1/firewall/call", json=call, headers={"X-API-Key": secret}).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key kept working past the cache TTL"
        time.sleep(0.05)


async def test_concurrent_requests_with_a_new_key_share_one_store_look_up(settings: Any, store: Any,
                                                                            monkeypatch: Any) -> None:
    import httpx

    from forewarn.api import auth
    from forewarn.api.app import create_app

    auth.key_cache.clear()
    with store.begin() as conn:
        _, secret = auth.create_key(conn, "telco", "switch")
    looked_up: list[str] = []
    real = auth._lookup_in_store

    def counting(st: Any, key: str) -> Any:
        looked_up.append(key)
        time.sleep(0.05)  # a slow store: every request arrives while the look-up is running
        return real(st, key)

    monkeypatch.setattr(auth, "_lookup_in_store", counting)
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        answers = await asyncio.gather(*(client.post("/v1/firewall/call", json={"caller": LISTED, "callee": CALLEE},
                                                     headers={"X-API-Key": secret}) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert looked_up == [secret]
    app.state.firewall.close()
