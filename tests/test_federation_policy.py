"""Sovereignty policies: the examples load, bad policies are refused with a reason, and — a property
test — a node never sends an object its policy forbids, whatever the policy and the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.config import load_settings
from forewarn.federation import outbox
from forewarn.federation import stix as fs
from forewarn.federation.policy import PolicyError, example_policy_path, load_policy, parse_policy
from forewarn.model.indicators import TLP, Indicator, IndicatorType
from forewarn.store import open_store
from forewarn.store import repository as repo

VALUES = {
    IndicatorType.PHONE: ["+66812345678", "+66812345679", "+8613800138000"],
    IndicatorType.URL: ["https://a.example.com/x", "https://b.example.org/"],
    IndicatorType.DOMAIN: ["scam.example.net"],
    IndicatorType.BANK_ACCOUNT: ["KBANK:1234567890", "MAYBANK:55667788"],
    IndicatorType.EWALLET: ["TRUEMONEY:0812345678"],
}
HASH_KEY = b"pairwise-secret"


@pytest.mark.parametrize("country", ["cn", "th", "my"])
def test_example_policies_load(country: str) -> None:
    policy = load_policy(example_policy_path(country))
    assert policy.node == country.upper() and len(policy.partners) == 2


@pytest.mark.parametrize(("raw", "problem"), [
    ({"node": "CN", "partners": {"TH": {"outbound": {"pseudonymisation": {"url": "keyed_hash"}}}}}, "keyed_hash"),
    ({"node": "CN", "partners": {"CN": {}}}, "itself"),
    ({"node": "CN", "partners": {"TH": {"outbound": {"max_tlp": "purple"}}}}, "max_tlp"),
    ({"node": "CN", "partners": {"TH": {"inbound": {"trust_weight": 2}}}}, "trust_weight"),
    ({"node": "CN", "partners": {"TH": {"outbound": {"shre": True}}}}, "shre"),
    (["not", "a", "mapping"], "mapping"),
])
def test_bad_policies_are_refused_with_the_reason(raw: object, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        parse_policy(raw, "test.yaml")


def test_unreadable_policy_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("node: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(tmp_path / "p.yaml")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


indicator_st = st.builds(
    lambda kind, i, tlp, conf, partner_derived: (kind, VALUES[kind][i % len(VALUES[kind])], tlp, conf, partner_derived),
    st.sampled_from(list(VALUES)), st.integers(0, 5), st.sampled_from(list(TLP)), st.integers(0, 100), st.booleans())

policy_st = st.fixed_dictionaries({
    "share": st.booleans(),
    "indicator_types": st.lists(st.sampled_from([k.value for k in VALUES]), unique=True, max_size=5),
    "max_tlp": st.sampled_from([x.value for x in TLP]),
    "min_confidence": st.integers(0, 100),
    "pseudonymisation": st.dictionaries(
        st.sampled_from(["phone", "bank_account", "ewallet"]), st.sampled_from(["raw", "keyed_hash", "psi_only"])),
    "share_partner_derived": st.booleans(),
    "include_observables": st.booleans(),
})


def _oracle(rules: dict, kind: IndicatorType, tlp: TLP, conf: int, derived: bool) -> str | None:
    """Written independently of policy.py: None if not sendable, else 'raw' or 'keyed_hash'."""
    if not rules["share"] or kind.value not in rules["indicator_types"]:
        return None
    how = rules["pseudonymisation"].get(kind.value, "raw")
    if how == "psi_only":
        return None
    order = ["clear", "green", "amber", "amber+strict", "red"]
    if order.index(tlp.value) > order.index(rules["max_tlp"]) or conf < rules["min_confidence"]:
        return None
    if derived and not rules["share_partner_derived"]:
        return None
    return how


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=policy_st, items=st.lists(indicator_st, min_size=1, max_size=25), use_export=st.booleans())
def test_a_node_never_sends_what_its_policy_forbids(tmp_path_factory: pytest.TempPathFactory, rules: dict,
                                                    items: list, use_export: bool) -> None:
    store = open_store(load_settings(tmp_path_factory.mktemp("node")))
    try:
        policy = parse_policy({"node": "CN", "partners": {"TH": {"outbound": rules}}})
        with store.begin() as conn:
            for kind, value, tlp, conf, derived in items:
                repo.upsert_indicator(conn, Indicator(type=kind, value=value, tlp=tlp, confidence=conf,
                                                      source="partner:MY" if derived else "detector:x"))
            if use_export:
                objects = outbox.export_bundle(conn, policy, "TH", hash_key=HASH_KEY)["objects"]
            else:
                outbox.refresh(conn, "CN")
                objects = [o for pg in outbox.iterate(conn, policy, "TH", hash_key=HASH_KEY, page_size=4)
                           for o in pg.objects]
            stored = repo.list_indicators(conn, limit=1000)
    finally:
        store.close()
    allowed: list[tuple[tuple, str]] = []  # ((type, value, tlp, confidence), form) per row the oracle lets out
    for ind in stored:
        derived = ind.source.startswith("partner:")
        form = _oracle(rules, ind.type, ind.tlp, ind.confidence, derived)
        if form:
            allowed.append(((ind.type, ind.value, ind.tlp.value, ind.confidence), form))
    text = json.dumps(objects)
    sent = 0
    for obj in objects:
        if obj["type"] != "indicator":
            continue
        sent += 1
        sco, prop, literal = fs.parse_simple_pattern(obj["pattern"])
        kind = fs.BY_SCO[sco].indicator_type
        tlp = fs.MARKING_TLP[obj["object_marking_refs"][0]].value
        if prop == fs.KEYED_HASH_PROP:
            matches = [k for k, form in allowed if k[0] == kind and form == "keyed_hash"
                       and fs.keyed_hash(HASH_KEY, kind, k[1]) == literal]
        else:
            matches = [k for k, form in allowed if k[0] == kind and form == "raw" and k[1] == literal]
        assert any(m[2] == tlp and m[3] == obj["confidence"] for m in matches), f"forbidden object sent: {obj}"
    assert sent == len(allowed)  # and everything allowed was sent, once
    for ind in stored:  # a value that may not leave raw never appears anywhere in what was sent
        if not any(k[1] == ind.value and form == "raw" for k, form in allowed):
            assert json.dumps(ind.value)[1:-1] not in text
