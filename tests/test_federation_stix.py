"""STIX 2.1 mapping: what Forewarn emits parses with stix2; what others send is read or refused
with a reason, and never crashes the import."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stix2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from forewarn.config import load_settings
from forewarn.federation import inbox, outbox
from forewarn.federation import stix as fs
from forewarn.federation.policy import NodePolicy, parse_policy
from forewarn.federation.tables import federation_inbox
from forewarn.model.indicators import TLP, Indicator, IndicatorType
from forewarn.store import Store, open_store
from forewarn.store import repository as repo
from forewarn.store import schema as t

SAMPLES = {
    IndicatorType.PHONE: "+66812345678",
    IndicatorType.SENDER_ID: "KBANK-TH",
    IndicatorType.URL: "https://kbank-secure.example.com/login?a='1'",
    IndicatorType.DOMAIN: "kbank-secure.example.com",
    IndicatorType.BANK_ACCOUNT: "KBANK:1234567890",
    IndicatorType.EWALLET: "TRUEMONEY:0812345678",
    IndicatorType.CRYPTO_WALLET: "0x52908400098527886e0f7030069857d2e4169ee7",
    IndicatorType.IMEI: "490154203237518",
    IndicatorType.APP_PACKAGE: "com.fake.bankapp",
}


def sharing_policy(**outbound: Any) -> NodePolicy:
    rules = {"indicator_types": [k.value for k in IndicatorType], "max_tlp": "amber", "min_confidence": 0,
             **outbound}
    return parse_policy({"node": "CN", "partners": {"TH": {"outbound": rules, "inbound": {"trust_weight": 0.9}}}})


@pytest.fixture
def loaded(store: Store) -> Store:
    now = datetime.now(UTC)
    with store.begin() as conn:
        for i, (kind, value) in enumerate(SAMPLES.items()):
            repo.upsert_indicator(conn, Indicator(type=kind, value=value, confidence=70 + i, source="detector:test",
                                                  tlp=TLP.GREEN if i % 2 else TLP.AMBER, scam_type="investment",
                                                  expires_at=now + timedelta(days=30) if i % 3 else None))
    return store


def test_every_emitted_bundle_parses_with_stix2_without_custom_allowance(loaded: Store) -> None:
    for how in ({}, {"default_pseudonymisation": "keyed_hash", "pseudonymisation": {"url": "raw", "domain": "raw"}}):
        policy = sharing_policy(**how)
        with loaded.begin() as conn:
            bundle = outbox.export_bundle(conn, policy, "TH", hash_key=b"pairwise")
        parsed = stix2.parse(json.loads(json.dumps(bundle)), allow_custom=False)
        types = [o.type for o in parsed.objects]
        assert types.count("indicator") == len(SAMPLES)
        assert {"phone-number", "bank-account", "e-wallet", "extension-definition", "marking-definition",
                "campaign", "relationship", "report", "identity"} <= set(types) or how
        for obj in parsed.objects:
            if obj.type == "indicator":
                assert obj.object_marking_refs[0] in fs.TLP2_MARKING_IDS.values()


def test_sco_ids_are_the_ones_stix2_computes() -> None:
    for kind, value in SAMPLES.items():
        sco = fs.observable_for(kind, value, None)
        assert stix2.parse(sco).id == sco["id"]


def test_tlp2_markings_are_the_official_ids() -> None:
    assert fs.TLP2_MARKING_IDS[TLP.CLEAR] == "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
    assert fs.TLP2_MARKING_IDS[TLP.RED] == "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
    for level in TLP:
        parsed = stix2.parse(fs.tlp_marking(level))
        assert parsed.name == f"TLP:{level.value.upper()}"


@given(kind=st.sampled_from(list(SAMPLES)), confidence=st.integers(0, 100), tlp=st.sampled_from(list(TLP)),
       revoked=st.booleans(), hashed=st.booleans())
def test_indicator_round_trip(kind: IndicatorType, confidence: int, tlp: TLP, revoked: bool, hashed: bool) -> None:
    if hashed and kind in (IndicatorType.URL, IndicatorType.DOMAIN):
        hashed = False
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    item = fs.Outgoing(f"indicator--{uuid.uuid4()}", kind.value, SAMPLES[kind], confidence, tlp.value, "romance",
                       now, now, now + timedelta(days=1), revoked, 3, now, now)
    obj = fs.indicator_object(item, node="CN", raw=not hashed, hash_key=b"k", retention_days=30, onward_sharing=False)
    stix2.parse(obj)
    back = fs.read_indicator(obj)
    assert (back.type, back.confidence, back.tlp, back.revoked, back.scam_type) == (kind, confidence, tlp, revoked,
                                                                                   "romance")
    if hashed:
        assert back.value is None and back.keyed_hash == fs.keyed_hash(b"k", kind, SAMPLES[kind])
        assert SAMPLES[kind] not in json.dumps(obj)
    else:
        assert back.value == SAMPLES[kind]
    assert back.retention_days == 30 and back.onward_sharing is False


def _foreign_bundle() -> dict[str, Any]:
    """What another producer (OpenCTI/MISP style) might send: TLP 1.0, custom x_ properties."""
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
         "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-02T00:00:00.000Z",
         "pattern": "[phone-number:value = '+66 81 234 5678']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
         "confidence": 80, "x_opencti_score": 75, "x_misp_category": "Payload delivery",
         "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]},
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
         "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
         "pattern": "[ipv4-addr:value = '198.51.100.1'] AND [url:value = 'http://a.example/']",
         "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
         "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
         "pattern": "[phone-number:value = ", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
         "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
         "pattern": "alert tcp any any -> any any (msg:\"x\";)", "pattern_type": "snort",
         "valid_from": "2026-01-01T00:00:00Z"},
        {"type": "malware", "spec_version": "2.1", "id": f"malware--{uuid.uuid4()}", "created": "2026-01-01T00:00:00.000Z",
         "modified": "2026-01-01T00:00:00.000Z", "name": "FakeBank", "is_family": True},
        {"type": "x-acme-thing", "id": f"x-acme-thing--{uuid.uuid4()}", "spec_version": "2.1", "foo": 1},
    ]}


def test_foreign_bundle_is_read_where_it_can_be_and_refused_with_reasons(store: Store) -> None:
    policy = sharing_policy()
    bundle_id, objects = inbox.bundle_objects(_foreign_bundle())
    with store.begin() as conn:
        report = inbox.import_objects(conn, policy, "TH", objects, signed=False, bundle_id=bundle_id)
    assert report.queued == 1  # unsigned: waits for an analyst even though TH is trusted
    assert report.unmapped == 2  # a compound STIX pattern and a snort rule are kept, not acted on
    assert report.rejected_count == 1 and "pattern" in report.rejected[0][1]
    assert report.ignored == 2 and report.context == 0  # malware and a custom type are kept out, with counts
    with store.engine.connect() as conn:
        queued = inbox.list_queue(conn, "TH")
        assert queued[0]["value"] == "+66812345678" and queued[0]["tlp"] == "green"
        assert repo.list_indicators(conn) == []  # nothing reached the firewall table


def _mutate(data: Any, choice: st.DataObject) -> Any:
    """Replace, delete or corrupt one part of a JSON document."""
    junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                     st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
    if isinstance(data, dict) and data:
        key = choice.draw(st.sampled_from(sorted(data, key=str)))
        action = choice.draw(st.sampled_from(["delete", "replace", "recurse", "add"]))
        if action == "delete":
            data.pop(key)
        elif action == "replace":
            data[key] = choice.draw(junk)
        elif action == "add":
            data[choice.draw(st.text(min_size=1, max_size=12))] = choice.draw(junk)
        else:
            data[key] = _mutate(data[key], choice)
        return data
    if isinstance(data, list) and data:
        i = choice.draw(st.integers(0, len(data) - 1))
        data[i] = _mutate(data[i], choice)
        return data
    return choice.draw(junk)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.data(), rounds=st.integers(1, 4))
def test_mutated_bundles_never_crash_the_import(tmp_path: Path, choice: st.DataObject, rounds: int) -> None:
    global _MUTATION_STORE
    if _MUTATION_STORE is None:
        _MUTATION_STORE = _seeded_store(tmp_path)
    store, base = _MUTATION_STORE
    bundle = copy.deepcopy(base)
    for _ in range(rounds):
        bundle = _mutate(bundle, choice)
    policy = sharing_policy()
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(federation_inbox)).scalar_one()
    try:
        bundle_id, objects = inbox.bundle_objects(bundle)
        signed = choice.draw(st.booleans())
        with store.begin() as conn:
            report = inbox.import_objects(conn, policy, "TH", objects, signed=signed, bundle_id=bundle_id)
    except inbox.ImportRejected as exc:
        assert str(exc)
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(federation_inbox)).scalar_one() == before
        return
    assert report.objects == len(objects)
    accounted = (report.indicators + report.sightings + report.context + report.ignored
                 + len([r for r in report.rejected if r[1]]))
    assert accounted >= min(report.objects, 1) or report.objects == 0
    with store.engine.connect() as conn:  # whatever entered the firewall table is a valid indicator
        for row in conn.execute(select(t.indicators)).mappings():
            Indicator(type=row["type"], value=row["value"], confidence=row["confidence"], source=row["source"],
                      tlp=row["tlp"])


_MUTATION_STORE: tuple[Store, dict[str, Any]] | None = None


def _seeded_store(tmp_path: Path) -> tuple[Store, dict[str, Any]]:
    source = open_store(load_settings(tmp_path / "source"))
    with source.begin() as conn:
        for kind, value in SAMPLES.items():
            repo.upsert_indicator(conn, Indicator(type=kind, value=value, confidence=80, source="d", tlp="green"))
        bundle = outbox.export_bundle(conn, sharing_policy(), "TH", hash_key=b"k")
    source.close()
    bundle["objects"].append({"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}",
                              "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                              "sighting_of_ref": bundle["objects"][-3]["id"], "count": 2})
    bundle["objects"].extend(_foreign_bundle()["objects"])
    return open_store(load_settings(tmp_path / "target")), bundle


def test_read_indicator_reasons() -> None:
    good = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": "[phone-number:value = '+66812345678']", "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z"}
    assert fs.read_indicator(good).value == "+66812345678"
    cases = {"confidence": (101, "confidence"), "modified": ("2025-01-01T00:00:00Z", "before created"),
             "valid_until": ("2025-01-01T00:00:00Z", "valid_until"), "id": ("indicator--nope", "TYPE--UUID"),
             "spec_version": ("2.0", "STIX 2.1 only"), "pattern": ("[phone-number:value = 'abc']", "phone")}
    for key, (bad, reason) in cases.items():
        with pytest.raises(fs.Unusable, match=reason):
            fs.read_indicator({**good, key: bad})


def test_scam_types_from_the_knowledge_base_become_campaigns_and_notes(store: Store) -> None:
    knowledge = fs.scam_type_knowledge()
    if not knowledge:
        pytest.skip("the screening knowledge base is not installed")
    scam = next(iter(knowledge))
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345678", confidence=90, source="d",
                                              tlp="green", scam_type=scam))
        bundle = outbox.export_bundle(conn, sharing_policy(), "TH", hash_key=b"k")
    parsed = stix2.parse(bundle, allow_custom=False)
    campaign = next(o for o in parsed.objects if o.type == "campaign")
    note = next(o for o in parsed.objects if o.type == "note")
    assert campaign.name == knowledge[scam]["name"] and note.object_refs == [campaign.id]
    assert "Stages:" in note.content
