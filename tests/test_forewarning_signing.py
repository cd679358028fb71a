"""Authenticated warnings: Ed25519 signatures, short codes, and the public verification routes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from forewarn.forewarning import run
from forewarn.forewarning.examples import build_scenario
from forewarn.forewarning.signing import (
    CODE_ALPHABET,
    CODE_RE,
    Signer,
    canonical,
    new_code,
    normalise_code,
    verify_code,
    verify_signature,
)
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def warned(store: Store) -> Store:
    sc = build_scenario(victims=4, bystanders=10, start=START)
    with store.begin() as conn:
        repo.insert_events(conn, sc.events)
        for ind in sc.indicators:
            repo.upsert_indicator(conn, ind)
    run(store)
    return store


def _first_warning(store: Store):  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return repo.list_warnings(conn)[0]


def test_codes_are_short_unambiguous_and_parse_back() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert CODE_RE.match(code) and len(code) == 9
        assert not set(code.replace("-", "")) & set("01OIL")
        assert normalise_code(code.lower().replace("-", " ")) == code


@given(st.text(max_size=20))
def test_normalise_code_never_crashes(raw: str) -> None:
    out = normalise_code(raw)
    assert out is None or (len(out) == 9 and set(out.replace("-", "")) <= set(CODE_ALPHABET))


def test_signature_verifies_and_detects_tampering(tmp_path) -> None:  # type: ignore[no-untyped-def]
    signer = Signer.load_or_create(tmp_path, "TH")
    payload = {"v": 1, "code": "ABCD-2345", "body_sha256": "00"}
    sig = signer.sign(payload)
    assert verify_signature(payload, sig, signer.public_key_hex)
    assert not verify_signature({**payload, "code": "ABCD-2346"}, sig, signer.public_key_hex)
    other = Signer.load_or_create(tmp_path / "other", "TH")
    assert not verify_signature(payload, sig, other.public_key_hex)
    assert Signer.load_or_create(tmp_path, "TH").key_id == signer.key_id  # the key persists
    assert (tmp_path / "keys" / "warning-signing.ed25519").stat().st_mode & 0o077 == 0


def test_stored_warning_is_genuine_and_text_checked(warned: Store) -> None:
    w = _first_warning(warned)
    with warned.engine.connect() as conn:
        ok = verify_code(conn, w.verification_code or "", text=f"  {w.body}  ", recipient=w.recipient)
        wrong_text = verify_code(conn, w.verification_code or "", text="Send 5000 baht now", recipient="+66810000001")
    assert ok.found and ok.genuine and ok.text_matches and ok.recipient_matches
    assert ok.recipient_masked and w.recipient not in json.dumps(ok.as_dict())
    assert wrong_text.genuine and wrong_text.text_matches is False and wrong_text.recipient_matches is False
    # a partner checks the signature offline with only the public key
    assert ok.payload and ok.signature and ok.public_key
    assert verify_signature(ok.payload, ok.signature, ok.public_key)


def test_altered_warning_is_not_genuine(warned: Store) -> None:
    w = _first_warning(warned)
    with warned.begin() as conn:
        conn.execute(update(t.warnings_).where(t.warnings_.c.warning_id == w.warning_id)
                     .values(body=w.body + " Transfer to account 123 now."))
    with warned.engine.connect() as conn:
        result = verify_code(conn, w.verification_code or "")
    assert result.found and not result.genuine


def test_public_verify_routes_need_no_key(api: TestClient, warned: Store) -> None:
    w = _first_warning(warned)
    resp = api.get(f"/v1/warnings/verify/{w.verification_code}")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["genuine"] is True and data["issuer"] and "body" not in data
    resp = api.post("/v1/warnings/verify", json={"code": (w.verification_code or "").lower(), "text": w.body,
                                                  "recipient": w.recipient})
    assert resp.status_code == 200 and resp.json()["text_matches"] and resp.json()["recipient_matches"]
    assert api.get("/v1/warnings/verify/ZZZZ-ZZZZ").status_code == 404
    assert api.get("/v1/warnings/verify/not-a-code").status_code == 404
    assert api.get("/v1/warnings/verify/ABCD-2345?recipient=12").status_code == 422
    keys = api.get("/v1/signing-keys").json()
    assert keys and keys[0]["algorithm"] == "Ed25519"
    assert verify_signature(data["payload"], data["signature"], keys[0]["public_key"])
    assert canonical(data["payload"])  # the payload is plain JSON a partner can canonicalise
