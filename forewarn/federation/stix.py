"""STIX 2.1 mapping: Forewarn indicators, observables, sightings, markings, campaigns, reports and
scam-type notes to and from STIX objects.

STIX 2.1 has no phone-number, bank-account or e-wallet object, so Forewarn defines them as new SCO
types, each announced by its own ``extension-definition`` (as OpenCTI does for Phone-Number and
Bank-Account), and carries its extra indicator properties (scam type, sightings, retention, onward
sharing, pseudonymisation) in one property-extension. Everything is registered with the ``stix2``
library so that its parser accepts every bundle Forewarn emits (a test checks it).

Objects are built as plain dicts, because ``stix2`` object construction costs ~1 ms each and a
node syncs millions; the tests check that the dicts are exactly what ``stix2`` would accept.
Reading is the reverse: :func:`read_indicator` validates what the importer needs, fast, and says
why an object cannot be used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from stix2.properties import BooleanProperty, IntegerProperty, StringProperty
from stix2.v21 import CustomExtension, CustomObservable

from forewarn.model.indicators import TLP, IndicatorType, InvalidIndicator, normalise_indicator

SPEC = "2.1"
NAMESPACE = uuid.UUID("55f6f583-aa5e-407a-aaf6-d8ef01ff3b74")  # Forewarn's own uuid5 namespace
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1 §2.9: deterministic SCO ids
PROJECT_IDENTITY = "identity--071ef131-5549-4fba-989d-c14a1c382ea2"
EXTENSIONS_CREATED = "2026-11-28T00:00:00.000Z"

# --- TLP 2.0: the official marking-definition objects (FIRST TLP 2.0 / OASIS CTI) ---------------
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKING_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# Producers still on TLP 1.0 (the stix2 library's TLP_WHITE etc.) are read as their TLP 2.0 peer.
TLP1_MARKING_IDS: dict[str, TLP] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TLP.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TLP.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TLP.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TLP.RED,
}
_TLP_RANK = {level: i for i, level in enumerate(TLP)}
MARKING_TLP: dict[str, TLP] = {**{v: k for k, v in TLP2_MARKING_IDS.items()}, **TLP1_MARKING_IDS}


def tlp_marking(level: TLP) -> dict[str, Any]:
    return {"type": "marking-definition", "spec_version": SPEC, "id": TLP2_MARKING_IDS[level],
            "created": "2022-10-01T00:00:00.000Z", "name": f"TLP:{level.value.upper()}",
            "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level.value}}}


# --- Forewarn extension definitions -------------------------------------------------------------
PROPERTY_EXTENSION = "extension-definition--f450ddf3-64ce-455e-ba89-7e5422f7d9cf"


@dataclass(frozen=True)
class ObservableType:
    indicator_type: IndicatorType
    sco_type: str
    prop: str
    extension_id: str | None  # None: a STIX 2.1 standard SCO
    description: str


OBSERVABLES: dict[IndicatorType, ObservableType] = {o.indicator_type: o for o in (
    ObservableType(IndicatorType.PHONE, "phone-number", "value",
                   "extension-definition--5d75348d-5939-4362-ae22-00618d3445eb",
                   "A telephone number in E.164 form (or its keyed hash)."),
    ObservableType(IndicatorType.SENDER_ID, "sender-id", "value",
                   "extension-definition--12be6ec1-dd96-4cf2-b954-41a6dfe95de7",
                   "An alphanumeric SMS sender identity."),
    ObservableType(IndicatorType.URL, "url", "value", None, "STIX url"),
    ObservableType(IndicatorType.DOMAIN, "domain-name", "value", None, "STIX domain-name"),
    ObservableType(IndicatorType.BANK_ACCOUNT, "bank-account", "value",
                   "extension-definition--75cf5372-8d74-46ff-8241-05cf65b81bc5",
                   "A bank account as BANKCODE:ACCOUNT or an IBAN (or its keyed hash)."),
    ObservableType(IndicatorType.EWALLET, "e-wallet", "value",
                   "extension-definition--14cdbf30-16e3-4888-9c09-6c7a2e93e5ad",
                   "An e-wallet account as PROVIDER:ACCOUNT (or its keyed hash)."),
    ObservableType(IndicatorType.CRYPTO_WALLET, "cryptocurrency-wallet", "value",
                   "extension-definition--da5f2da9-8e63-4140-802f-793461572237",
                   "A Bitcoin, Ethereum or TRON address."),
    ObservableType(IndicatorType.IMEI, "mobile-device", "imei",
                   "extension-definition--6c92a65c-e239-4e1f-af80-e9211101a79c",
                   "A handset by its 15-digit IMEI."),
    ObservableType(IndicatorType.APP_PACKAGE, "mobile-app", "package_name",
                   "extension-definition--c7e4a4f9-5715-468a-bb0f-81c28d5bb465",
                   "A mobile application by its package name."),
)}
BY_SCO: dict[str, ObservableType] = {o.sco_type: o for o in OBSERVABLES.values()}
KEYED_HASH_PROP = "keyed_hash"


def _register_with_stix2() -> None:
    """Teach the stix2 library Forewarn's SCO types and property extension (idempotent)."""
    from stix2.registry import STIX2_OBJ_MAPS

    registered = STIX2_OBJ_MAPS[SPEC]["observables"]
    for obs in OBSERVABLES.values():
        if obs.extension_id is None or obs.sco_type in registered:
            continue
        cls = type(obs.sco_type.title().replace("-", ""), (object,), {})
        CustomObservable(obs.sco_type, [(obs.prop, StringProperty()), (KEYED_HASH_PROP, StringProperty())],
                         [obs.prop, KEYED_HASH_PROP], extension_name=obs.extension_id)(cls)
    if PROPERTY_EXTENSION not in STIX2_OBJ_MAPS[SPEC]["extensions"]:
        cls = type("ForewarnIndicatorProperties", (object,), {})
        CustomExtension(PROPERTY_EXTENSION, [
            ("extension_type", StringProperty(fixed="property-extension")),
            ("indicator_type", StringProperty()),
            ("scam_type", StringProperty()),
            ("last_seen", StringProperty()),
            ("sightings", IntegerProperty(min=0)),
            ("retention_days", IntegerProperty(min=1)),
            ("onward_sharing", BooleanProperty()),
            ("pseudonymisation", StringProperty()),
            ("source_node", StringProperty()),
        ])(cls)


_register_with_stix2()


def extension_definitions() -> list[dict[str, Any]]:
    defs = [{"type": "extension-definition", "spec_version": SPEC, "id": PROPERTY_EXTENSION,
             "created_by_ref": PROJECT_IDENTITY, "created": EXTENSIONS_CREATED, "modified": EXTENSIONS_CREATED,
             "name": "Forewarn indicator properties",
             "description": "Scam type, last seen, sightings, retention, onward sharing and pseudonymisation "
                            "of a Forewarn indicator.",
             "schema": "urn:forewarn:stix:indicator-properties:1.0", "version": "1.0.0",
             "extension_types": ["property-extension"]}]
    for obs in OBSERVABLES.values():
        if obs.extension_id:
            defs.append({"type": "extension-definition", "spec_version": SPEC, "id": obs.extension_id,
                         "created_by_ref": PROJECT_IDENTITY, "created": EXTENSIONS_CREATED,
                         "modified": EXTENSIONS_CREATED, "name": f"Forewarn {obs.sco_type}",
                         "description": obs.description, "schema": f"urn:forewarn:stix:{obs.sco_type}:1.0",
                         "version": "1.0.0", "extension_types": ["new-sco"]})
    return defs


def project_identity() -> dict[str, Any]:
    return {"type": "identity", "spec_version": SPEC, "id": PROJECT_IDENTITY, "created": EXTENSIONS_CREATED,
            "modified": EXTENSIONS_CREATED, "name": "Forewarn", "identity_class": "organization",
            "description": "Publisher of the Forewarn STIX extensions."}


def node_identity_id(node: str) -> str:
    return f"identity--{uuid.uuid5(NAMESPACE, 'node:' + node.upper())}"


def node_identity(node: str, display_name: str | None = None) -> dict[str, Any]:
    return {"type": "identity", "spec_version": SPEC, "id": node_identity_id(node), "created": EXTENSIONS_CREATED,
            "modified": EXTENSIONS_CREATED, "name": display_name or f"Forewarn node {node.upper()}",
            "identity_class": "organization", "sectors": ["government-national"]}


# --- small helpers ------------------------------------------------------------------------------

def ts(value: datetime) -> str:
    """A STIX timestamp (UTC, milliseconds, ``Z``); naive datetimes are taken as UTC."""
    v = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return v.isoformat(timespec="milliseconds") + "Z"


def ts_precise(value: datetime) -> str:
    """A STIX timestamp with microseconds, for TAXII ``date_added`` values that clients send back."""
    v = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return v.isoformat(timespec="microseconds") + "Z"


def stored_ts(value: str | datetime | None, *, precise: bool = False) -> str | None:
    """The STIX timestamp of a timestamp as the store hands it back, without building a datetime where
    it can: SQLite gives UTC wall time as ``YYYY-MM-DD HH:MM:SS.ffffff`` text (SQLAlchemy's storage
    format, and :mod:`forewarn.federation.bulk`'s), PostgreSQL an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return value[:10] + "T" + (value[11:] if precise else value[11:23]) + "Z"
        value = datetime.fromisoformat(value)
    return ts_precise(value) if precise else ts(value)


_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def parse_ts(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z): {str(text)[:40]!r}")
    return _parse_ts_cached(text)


@lru_cache(maxsize=65_536)  # a page's objects share created/modified stamps
def _parse_ts_cached(text: str) -> datetime:
    if not _TS_RE.match(text):
        raise ValueError(f"not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z): {str(text)[:40]!r}")
    head, _, frac = text[:-1].partition(".")
    micro = int((frac + "000000")[:6]) if frac else 0
    return datetime.fromisoformat(head).replace(microsecond=micro, tzinfo=UTC)


def keyed_hash(key: bytes, kind: IndicatorType | str, value: str) -> str:
    """HMAC-SHA256 of ``type:value`` under the pairwise key both partners hold."""
    return hmac.new(key, f"{IndicatorType(kind).value}:{value}".encode(), hashlib.sha256).hexdigest()


def pattern_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# possessive runs: one step per run of plain characters, and no backtracking on hostile input
_PATTERN_RE = re.compile(r"^\[([a-z0-9-]+):([a-z_]+) = '((?:[^'\\]++|\\.)*+)'\]$")


def parse_simple_pattern(pattern: str) -> tuple[str, str, str] | None:
    """``(sco type, property, literal)`` of a one-comparison equality pattern, else ``None``."""
    m = _PATTERN_RE.match(pattern)
    if not m:
        return None
    literal = m.group(3)
    if "\\" in literal:
        literal = re.sub(r"\\(.)", r"\1", literal)
    return m.group(1), m.group(2), literal


def sco_id(sco_type: str, contributing: dict[str, str]) -> str:
    """Deterministic SCO id exactly as STIX 2.1 §2.9 (and the stix2 library) computes it."""
    if len(contributing) == 1:  # the common case, without json.dumps: '{"prop":"value"}'
        ((prop, value),) = contributing.items()
        body = '{' + _json_str(prop) + ':' + _json_str(value) + '}'
    else:
        body = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{sco_type}--{uuid5_text(SCO_NAMESPACE_BYTES, body)}"


SCO_NAMESPACE_BYTES = SCO_NAMESPACE.bytes
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]  # JSON string literal, ensure_ascii=False


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building UUID objects (a million SCO ids per sync)."""
    h = hashlib.sha1(namespace + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits 10xx


def stix_id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, '|'.join(str(p) for p in parts))}"


# --- outbound: indicators, observables, sightings -----------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One indicator as the outbox snapshot holds it."""

    stix_id: str
    type: str
    value: str
    confidence: int
    tlp: str
    scam_type: str | None
    first_seen: datetime
    last_seen: datetime
    expires_at: datetime | None
    revoked: bool
    sightings: int
    created: datetime
    modified: datetime


def observable_for(kind: IndicatorType, value: str | None, hashed: str | None) -> dict[str, Any]:
    obs = OBSERVABLES[kind]
    contributing = {obs.prop: value} if value is not None else {KEYED_HASH_PROP: hashed or ""}
    sco: dict[str, Any] = {"type": obs.sco_type, "spec_version": SPEC, "id": sco_id(obs.sco_type, contributing),
                           **contributing}
    if obs.extension_id:
        sco["extensions"] = {obs.extension_id: {"extension_type": "new-sco"}}
    return sco


class IndicatorRenderer:
    """Builds the STIX indicators (and their observables) one partner view receives.

    What is the same for every object of the view — creator, retention, onward sharing, the pairwise
    key — is fixed once; timestamps come in as STIX strings (:func:`ts`, :func:`stored_ts`), so a
    page of outbox rows is rendered without a datetime per value (a sync renders millions).
    """

    def __init__(self, *, node: str, retention_days: int, onward_sharing: bool, hash_key: bytes | None) -> None:
        self.node, self.retention_days, self.onward_sharing, self.hash_key = node, retention_days, onward_sharing, hash_key
        self.created_by = node_identity_id(node)

    def objects(self, stix_id: str, type_: str, value: str, confidence: int, tlp: str, scam_type: str | None,
                first_seen: str, last_seen: str, expires_at: str | None, revoked: bool, sightings: int,
                created: str, modified: str, *, raw: bool, observable: bool) -> list[dict[str, Any]]:
        """``[indicator]`` or ``[indicator, observable]``: raw value or keyed hash, never both."""
        kind, obs, words = _KINDS[type_]
        digest: str | None = None
        if raw:
            pattern = f"[{obs.sco_type}:{obs.prop} = {pattern_literal(value)}]"
            label = value
        else:
            if self.hash_key is None:
                raise ValueError("a keyed hash needs the pairwise hash key")
            digest = keyed_hash(self.hash_key, kind, value)
            pattern = f"[{obs.sco_type}:{KEYED_HASH_PROP} = '{digest}']"
            label = f"{type_} (keyed hash {digest[:12]}…)"
        ext: dict[str, Any] = {"extension_type": "property-extension", "indicator_type": type_,
                               "last_seen": last_seen, "sightings": max(0, sightings),
                               "retention_days": self.retention_days, "onward_sharing": self.onward_sharing,
                               "pseudonymisation": "raw" if raw else "keyed_hash", "source_node": self.node}
        if scam_type:
            ext["scam_type"] = scam_type
        # all timestamps are fixed-width STIX strings, so comparing the strings compares the instants
        obj: dict[str, Any] = {
            "type": "indicator", "spec_version": SPEC, "id": stix_id, "created_by_ref": self.created_by,
            "created": created, "modified": modified if modified > created else created,
            "name": f"Fraud {words}: {label}"[:250],
            "indicator_types": ["malicious-activity"], "pattern": pattern, "pattern_type": "stix",
            "pattern_version": SPEC, "valid_from": first_seen, "confidence": int(confidence),
            "object_marking_refs": [_MARKING_BY_TLP.get(tlp) or TLP2_MARKING_IDS[TLP(tlp)]],
            "extensions": {PROPERTY_EXTENSION: ext},
        }
        if expires_at is not None:
            # STIX requires valid_until after valid_from; an already expired indicator ends 1 ms after it starts.
            obj["valid_until"] = (expires_at if expires_at > first_seen
                                  else ts(parse_ts(first_seen) + timedelta(milliseconds=1)))
        if scam_type:
            obj["labels"] = [scam_type]
        if revoked:
            obj["revoked"] = True
        if not observable:
            return [obj]
        return [obj, observable_for(kind, value if raw else None, digest)]


_MARKING_BY_TLP: dict[str, str] = {level.value: marking for level, marking in TLP2_MARKING_IDS.items()}
_KINDS: dict[str, tuple[IndicatorType, ObservableType, str]] = {
    k.value: (k, OBSERVABLES[k], k.value.replace("_", " ")) for k in OBSERVABLES}


def indicator_object(item: Outgoing, *, node: str, raw: bool, hash_key: bytes | None,
                     retention_days: int, onward_sharing: bool, max_valid_until: datetime | None = None,
                     ) -> dict[str, Any]:
    """The STIX indicator a partner receives: raw value or keyed hash, never both."""
    IndicatorType(item.type)  # a clear ValueError for an unknown type
    until = item.expires_at
    if max_valid_until is not None:
        until = min(until, max_valid_until) if until else max_valid_until
    renderer = IndicatorRenderer(node=node, retention_days=retention_days, onward_sharing=onward_sharing,
                                 hash_key=hash_key)
    return renderer.objects(item.stix_id, item.type, item.value, item.confidence, item.tlp, item.scam_type,
                            ts(item.first_seen), ts(item.last_seen), ts(until) if until is not None else None,
                            item.revoked, item.sightings, ts(item.created), ts(item.modified), raw=raw,
                            observable=False)[0]


def sighting_object(*, sighting_id: str, node: str, sighting_of: str, count: int, first_seen: datetime,
                    last_seen: datetime, created: datetime, tlp: TLP = TLP.AMBER) -> dict[str, Any]:
    return {"type": "sighting", "spec_version": SPEC, "id": sighting_id, "created_by_ref": node_identity_id(node),
            "created": ts(created), "modified": ts(created), "sighting_of_ref": sighting_of,
            "count": max(0, min(count, 999_999_999)), "first_seen": ts(first_seen),
            "last_seen": ts(max(last_seen, first_seen)), "where_sighted_refs": [node_identity_id(node)],
            "object_marking_refs": [TLP2_MARKING_IDS[tlp]]}


def make_bundle(objects: Sequence[dict[str, Any]], bundle_id: str | None = None) -> dict[str, Any]:
    return {"type": "bundle", "id": bundle_id or f"bundle--{uuid.uuid4()}", "objects": list(objects)}


# --- scam types, campaigns and reports (file exports) -------------------------------------------

def _field(item: Any, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        if value:
            return value
    return None


def scam_type_knowledge() -> dict[str, dict[str, Any]]:
    """Scam types from the screening knowledge base (``forewarn.screening.knowledge.scam_types``), by id:
    name, description (advice) and the scam's script (its stages and cues), for STIX notes.

    The knowledge base is optional: without it exports simply carry no scam-type notes.
    """
    try:
        from forewarn.screening.knowledge import scam_types
    except Exception:  # absent or broken: federation works without it
        return {}
    try:
        items: Any = scam_types()
        values = list(items.values()) if isinstance(items, dict) else list(items)
        out: dict[str, dict[str, Any]] = {}
        for item in values:
            key = _field(item, "id", "key", "slug")
            if not key:
                continue
            names = _field(item, "names") or {}
            advice = _field(item, "advice") or {}
            name = (names.get("en") or next(iter(names.values()), None)) if isinstance(names, dict) else None
            description = advice.get("en", "") if isinstance(advice, dict) else str(advice or "")
            stages = [str(x) for x in (_field(item, "stages") or [])]
            cues = [str(x) for x in (_field(item, "cues") or [])]
            script = ([f"Stages: {' → '.join(stages)}"] if stages else []) + ([f"Cues: {', '.join(cues[:12])}"]
                                                                             if cues else [])
            out[str(key)] = {"name": str(name or key), "description": description, "scripts": script}
        return out
    except Exception:  # a knowledge base that cannot be read must not stop an export
        return {}


def campaign_objects(node: str, indicator_ids_by_scam: dict[str, list[str]], created: datetime,
                     knowledge: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One campaign per scam type, indicators ``indicates`` it, and a note with the scam's scripts."""
    knowledge = knowledge or {}
    out: list[dict[str, Any]] = []
    identity = node_identity_id(node)
    stamp = ts(created)
    for scam, ids in sorted(indicator_ids_by_scam.items()):
        if not ids:
            continue
        info = knowledge.get(scam, {})
        campaign_id = stix_id("campaign", node, scam)
        out.append({"type": "campaign", "spec_version": SPEC, "id": campaign_id, "created_by_ref": identity,
                    "created": stamp, "modified": stamp, "name": info.get("name") or f"{scam} fraud operations",
                    "description": info.get("description") or f"Indicators of {scam} fraud seen by node {node}."})
        for ind_id in ids:
            out.append({"type": "relationship", "spec_version": SPEC,
                        "id": stix_id("relationship", ind_id, campaign_id), "created_by_ref": identity,
                        "created": stamp, "modified": stamp, "relationship_type": "indicates",
                        "source_ref": ind_id, "target_ref": campaign_id})
        if info.get("description") or info.get("scripts"):
            lines = [info.get("description", "")] + [f"Script: {s}" for s in info.get("scripts", [])]
            out.append({"type": "note", "spec_version": SPEC, "id": stix_id("note", node, scam, stamp),
                        "created_by_ref": identity, "created": stamp, "modified": stamp,
                        "abstract": f"How the {info.get('name', scam)} scam works",
                        "content": "\n".join(x for x in lines if x)[:20_000], "object_refs": [campaign_id]})
    return out


def report_object(node: str, partner: str | None, object_ids: Iterable[str], created: datetime) -> dict[str, Any]:
    # A report may point at SDOs, SCOs and SROs, not at marking or extension definitions.
    refs = [i for i in object_ids if not i.startswith(("marking-definition--", "extension-definition--"))]
    return {"type": "report", "spec_version": SPEC, "id": f"report--{uuid.uuid4()}",
            "created_by_ref": node_identity_id(node), "created": ts(created), "modified": ts(created),
            "name": f"Forewarn indicators from {node}" + (f" for {partner}" if partner else ""),
            "report_types": ["threat-report"], "published": ts(created), "object_refs": refs or [node_identity_id(node)]}


# --- inbound: reading an indicator from any producer --------------------------------------------

# a lazy type: a greedy one would swallow the UUID's hex digits and then back off one at a time
_ID_RE = re.compile(r"^([a-z0-9-]+?)--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Unusable(ValueError):
    """An object that cannot be imported; the message says why."""


class Incoming(NamedTuple):
    """What the importer keeps of one partner indicator (a tuple: a sync reads millions)."""

    stix_id: str
    modified: datetime
    type: IndicatorType | None
    value: str | None
    keyed_hash: str | None
    confidence: int
    tlp: TLP
    scam_type: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    revoked: bool
    onward_sharing: bool
    retention_days: int | None
    pattern_note: str | None = None  # set when the pattern is valid STIX that Forewarn cannot act on


def check_id(obj: dict[str, Any], expected_type: str | None = None) -> str:
    oid = obj.get("id")
    if not isinstance(oid, str) or (match := _ID_RE.match(oid)) is None:
        raise Unusable(f"id {str(oid)[:60]!r} is not TYPE--UUID")
    if match.group(1) != obj.get("type"):
        raise Unusable(f"id {oid} does not match type {obj.get('type')!r}")
    if expected_type and obj.get("type") != expected_type:
        raise Unusable(f"expected a {expected_type}, got {obj.get('type')!r}")
    return oid


def object_tlp(obj: dict[str, Any]) -> TLP:
    """The most restrictive TLP among the object's markings; unmarked objects are read as TLP:AMBER."""
    refs = obj.get("object_marking_refs") or []
    if not isinstance(refs, list):
        raise Unusable("object_marking_refs is not a list")
    if len(refs) == 1 and isinstance(refs[0], str):  # the common case: one marking
        return MARKING_TLP.get(refs[0], TLP.AMBER)
    levels = [MARKING_TLP[r] for r in refs if isinstance(r, str) and r in MARKING_TLP]
    if not levels:
        return TLP.AMBER
    return levels[0] if len(levels) == 1 else max(levels, key=_TLP_RANK.__getitem__)


_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")


def read_indicator(obj: dict[str, Any], *, from_forewarn_node: bool = False) -> Incoming:
    """Validate one STIX indicator and read what Forewarn needs; raises :class:`Unusable` with the reason.

    ``from_forewarn_node``: the object comes in a page signed by a pinned Forewarn partner, whose values
    are already canonical, so a phone number in E.164 shape skips the full (slow) re-parse.
    """
    oid = check_id(obj, "indicator")
    get = obj.get
    spec = get("spec_version", SPEC)
    if spec != SPEC:
        raise Unusable(f"spec_version {spec!r} is not supported (STIX 2.1 only)")
    try:
        created = parse_ts(get("created"))
        modified = parse_ts(get("modified"))
        valid_from = parse_ts(obj["valid_from"]) if "valid_from" in obj else None
        valid_until = parse_ts(obj["valid_until"]) if "valid_until" in obj else None
    except ValueError as exc:
        raise Unusable(str(exc)) from None
    if modified < created:
        raise Unusable("modified is before created")
    if valid_from is None:
        raise Unusable("an indicator needs valid_from")
    if valid_until is not None and valid_until <= valid_from:
        raise Unusable("valid_until is not after valid_from")
    confidence = get("confidence", 50)
    if isinstance(confidence, bool) or not isinstance(confidence, int) or not 0 <= confidence <= 100:
        raise Unusable(f"confidence {confidence!r} is not an integer 0–100")
    revoked = get("revoked", False)
    if not isinstance(revoked, bool):
        raise Unusable("revoked is not a boolean")
    pattern, pattern_type = get("pattern"), get("pattern_type")
    if not isinstance(pattern, str) or not pattern or not isinstance(pattern_type, str):
        raise Unusable("an indicator needs a pattern and a pattern_type")
    extensions = get("extensions")
    ext = extensions.get(PROPERTY_EXTENSION) if isinstance(extensions, dict) else None
    if not isinstance(ext, dict):
        ext = {}
    scam, retention = ext.get("scam_type"), ext.get("retention_days")
    kind, value, hashed, note = _read_pattern(pattern, pattern_type, from_forewarn_node)
    return Incoming(oid, modified, kind, value, hashed, confidence, object_tlp(obj),
                    scam[:80] if isinstance(scam, str) else None, valid_from, valid_until, revoked,
                    ext.get("onward_sharing", False) is True,
                    retention if isinstance(retention, int) and not isinstance(retention, bool) and retention > 0
                    else None, note)


def _read_pattern(pattern: str, pattern_type: str, from_forewarn_node: bool,
                  ) -> tuple[IndicatorType | None, str | None, str | None, str | None]:
    """(type, canonical value, keyed hash, note) of an indicator's pattern; :class:`Unusable` if bad."""
    if pattern_type != "stix":
        return None, None, None, f"pattern_type {pattern_type[:40]!r} is kept but not acted on"
    simple = parse_simple_pattern(pattern)
    if simple is None or simple[0] not in BY_SCO:
        _check_stix_pattern(pattern)
        return None, None, None, "pattern is valid STIX but not one equality on a Forewarn observable"
    sco_type, prop, literal = simple
    obs = BY_SCO[sco_type]
    if prop == KEYED_HASH_PROP:
        if not _KEYED_HASH_RE.fullmatch(literal):
            raise Unusable("keyed_hash is not 64 hex digits")
        return obs.indicator_type, None, literal, None
    if prop != obs.prop:
        raise Unusable(f"{sco_type} has no property {prop!r}")
    if from_forewarn_node and obs.indicator_type is IndicatorType.PHONE and _E164_RE.match(literal):
        return obs.indicator_type, literal, None, None
    try:
        return obs.indicator_type, normalise_indicator(obs.indicator_type, literal), None, None
    except InvalidIndicator as exc:
        raise Unusable(f"pattern value: {exc}") from None


_KEYED_HASH_RE = re.compile(r"[0-9a-f]{64}")


def _check_stix_pattern(pattern: str) -> None:
    from stix2patterns.validator import run_validator

    try:
        errors = run_validator(pattern)
    except Exception as exc:  # the validator itself can fail on odd input; that is a bad pattern too
        raise Unusable(f"pattern cannot be parsed: {type(exc).__name__}") from None
    if errors:
        raise Unusable(f"invalid STIX pattern: {str(errors[0])[:200]}")


@dataclass(frozen=True)
class IncomingSighting:
    stix_id: str
    sighting_of: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None


def read_sighting(obj: dict[str, Any]) -> IncomingSighting:
    oid = check_id(obj, "sighting")
    ref = obj.get("sighting_of_ref")
    if not isinstance(ref, str) or not _ID_RE.match(ref):
        raise Unusable("sighting_of_ref is not a STIX id")
    count = obj.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 999_999_999:
        raise Unusable(f"count {count!r} is not an integer 0–999999999")
    try:
        first = parse_ts(obj["first_seen"]) if "first_seen" in obj else None
        last = parse_ts(obj["last_seen"]) if "last_seen" in obj else None
    except ValueError as exc:
        raise Unusable(str(exc)) from None
    return IncomingSighting(oid, ref, count, first, last)
