"""Node keys, signed messages and bundle files, replay protection; and private set intersection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.federation import psi, ristretto
from forewarn.federation.policy import parse_policy
from forewarn.federation.signing import (
    H_TS,
    ReplayError,
    SignatureError,
    generate_key,
    load_key,
    remember,
    sign_file_bytes,
    sign_headers,
    verify_file_bytes,
    verify_headers,
)
from forewarn.model.indicators import Indicator
from forewarn.store import Store
from forewarn.store import repository as repo


@pytest.fixture
def keys(tmp_path: Path):  # type: ignore[no-untyped-def]
    return generate_key(tmp_path / "cn.key", "CN"), generate_key(tmp_path / "evil.key", "CN")


def test_key_file_is_private_and_not_overwritten(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "node.key", "TH")
    assert (tmp_path / "node.key").stat().st_mode & 0o777 == 0o600
    assert load_key(tmp_path / "node.key", "TH").public_key == key.public_key
    with pytest.raises(FileExistsError):
        generate_key(tmp_path / "node.key", "TH")
    (tmp_path / "bad.key").write_text("not base64!")
    with pytest.raises(SignatureError, match="base64"):
        load_key(tmp_path / "bad.key", "TH")


def test_signed_message_checks(keys) -> None:  # type: ignore[no-untyped-def]
    cn, evil = keys
    body = b'{"objects":[]}'
    headers = sign_headers(cn, "TH", body, "taxii:/x")
    args = dict(partner="CN", public_key=cn.public_key, me="TH", purpose="taxii:/x", window_seconds=60)
    assert verify_headers(headers, body, **args) == headers["X-Forewarn-Nonce"]
    with pytest.raises(SignatureError, match="bad signature"):
        verify_headers(headers, body + b" ", **args)  # altered body
    with pytest.raises(SignatureError, match="bad signature"):
        verify_headers(headers, body, **{**args, "purpose": "taxii:/y"})  # reused for another request
    with pytest.raises(SignatureError, match="bad signature"):
        verify_headers(sign_headers(evil, "TH", body, "taxii:/x"), body, **args)  # not the pinned key
    with pytest.raises(SignatureError, match="not to this node"):
        verify_headers(headers, body, **{**args, "me": "MY"})
    with pytest.raises(ReplayError, match="window"):
        verify_headers({**headers, H_TS: str(int(time.time()) - 3600)}, body, **args)
    with pytest.raises(ReplayError, match="nonce"):
        verify_headers(headers, body, **args, expect_nonce="another")
    with pytest.raises(SignatureError, match="not signed"):
        verify_headers({}, body, **args)
    with pytest.raises(SignatureError, match="no public key pinned"):
        verify_headers(headers, body, **{**args, "public_key": None})


def test_bundle_file_signature(keys) -> None:  # type: ignore[no-untyped-def]
    cn, _ = keys
    body = json.dumps({"type": "bundle"}).encode()
    sig = sign_file_bytes(cn, "TH", body, "bundle--1")
    assert verify_file_bytes(sig, body, public_key=cn.public_key, me="TH", max_age_days=7) == "CN"
    with pytest.raises(SignatureError):
        verify_file_bytes(sig, body.replace(b"bundle", b"bundlE"), public_key=cn.public_key, me="TH", max_age_days=7)
    with pytest.raises(SignatureError, match="signed for"):
        verify_file_bytes(sig, body, public_key=cn.public_key, me="MY", max_age_days=7)


def test_replay_store(store: Store) -> None:
    with store.begin() as conn:
        remember(conn, "nonce:CN:abc", "CN")
    with pytest.raises(ReplayError, match="already received"), store.begin() as conn:
        remember(conn, "nonce:CN:abc", "CN")


@settings(max_examples=25, deadline=None)
@given(ours=st.sets(st.integers(0, 60), max_size=30), theirs=st.sets(st.integers(0, 60), max_size=30))
def test_psi_finds_exactly_the_intersection(ours: set[int], theirs: set[int]) -> None:
    a = [f"+6681{i:07d}" for i in ours]
    b = [f"+6681{i:07d}" for i in theirs]
    query = psi.blind("phone", a)
    answer = psi.respond_to("phone", query.elements, b)
    assert psi.finish(query, answer) == set(a) & set(b)
    # the responder saw only blinded points: none equals a plain hash-to-group of a value
    plain = set(psi.encode(ristretto.hash_to_points([psi.digest("phone", v) for v in a])))
    assert not plain & set(query.elements)
    assert len(answer["ours"]) == len(b)


def test_psi_refuses_bad_points_and_mismatched_answers() -> None:
    with pytest.raises(psi.PsiError, match="valid ristretto255"):
        psi.respond_to("phone", ["A" * 43 + "="], ["+66812345678"])
    with pytest.raises(psi.PsiError, match="base64"):
        psi.respond_to("phone", ["short"], [])
    query = psi.blind("phone", ["+66812345678"])
    with pytest.raises(psi.PsiError, match="elements for"):
        psi.finish(query, {"doubled": [], "ours": []})


def test_psi_list_follows_the_policy(store: Store) -> None:
    policy = parse_policy({"node": "CN", "partners": {
        "MY": {"outbound": {"psi": True, "psi_types": ["phone"], "min_confidence": 60}},
        "TH": {"outbound": {"psi": False}}}})
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345678", confidence=90, source="d"))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345679", confidence=10, source="d"))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345670", confidence=90, source="partner:TH"))
        repo.upsert_indicator(conn, Indicator(type="bank_account", value="KBANK:12345678", confidence=90, source="d"))
    with store.engine.connect() as conn:
        assert psi.psi_values(conn, policy, "MY", "phone") == ["+66812345678"]
        with pytest.raises(psi.PsiError, match="does not match"):
            psi.psi_values(conn, policy, "MY", "bank_account")
        with pytest.raises(psi.PsiError, match="does not match"):
            psi.psi_values(conn, policy, "TH", "phone")


def test_threshold_reveal() -> None:
    result = psi.threshold_reveal({"TH": {"a", "b"}, "MY": {"b", "c"}}, 2, own={"c"})
    assert result["revealed"] == ["b", "c"] and result["withheld"] == 1
