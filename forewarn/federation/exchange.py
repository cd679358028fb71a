"""Bundle files: ``forewarn federation export`` and ``import``.

An export holds exactly what the policy lets one partner see (or, with no partner, only TLP:CLEAR
findings of our own) and is signed by the node key in a detached ``BUNDLE.json.sig``. An import
checks that signature against the key pinned for the signing partner; an unsigned bundle — from
another producer, say — is still read, but nothing in it reaches the firewall without an analyst.

Bundles are rendered as TAXII pages are (orjson, via :func:`signing.canonical_json`):
compact UTF-8 in the bundle's own key order, so the bytes signed are a function of the bundle alone,
and strict RFC 8259 JSON (no ``NaN``, no lone surrogates) as STIX 2.1 requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from forewarn.federation import outbox
from forewarn.federation.inbox import (
    ImportRejected,
    ImportReport,
    apply_retention,
    bundle_objects,
    import_objects,
)
from forewarn.federation.node import FederationError, FederationNode
from forewarn.federation.policy import PolicyError
from forewarn.federation.signing import (
    SignatureError,
    canonical_json,
    remember,
    sign_file_bytes,
    verify_file_bytes,
)
from forewarn.store import audit

MAX_BUNDLE_BYTES = 1_073_741_824


def signature_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + ".sig")


def export_file(node: FederationNode, output: Path, partner: str | None = None) -> dict[str, Any]:
    """Write the signed bundle for ``partner``; returns counts by STIX type."""
    partner = partner.upper() if partner else None
    if partner:
        try:
            node.policy.partner(partner)
        except PolicyError as exc:
            raise FederationError(str(exc)) from None
    key = node.require_key()
    hash_key = node.credentials.hash_key(partner) if partner else None
    with node.store.begin() as conn:
        bundle = outbox.export_bundle(conn, node.policy, partner, hash_key=hash_key)
        audit.append(conn, f"federation:{node.name}", "federation.export", partner or "public",
                     {"bundle_id": bundle["id"], "objects": len(bundle["objects"]), "file": str(output)})
    try:
        body = canonical_json(bundle)
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in a stored value: not valid STIX JSON
        raise FederationError(f"the bundle cannot be written as JSON: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    tmp.write_bytes(body)
    tmp.replace(output)
    sig = sign_file_bytes(key, partner or "ANY", body, bundle["id"])
    signature_path(output).write_bytes(orjson.dumps(sig, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    by_type: dict[str, int] = {}
    for obj in bundle["objects"]:
        by_type[obj["type"]] = by_type.get(obj["type"], 0) + 1
    return {"bundle_id": bundle["id"], "partner": partner, "objects": len(bundle["objects"]), "by_type": by_type,
            "signature": str(signature_path(output))}


def import_file(node: FederationNode, path: Path, *, partner: str | None = None) -> ImportReport:
    """Read a bundle file; signed by a pinned partner → trusted as the policy says, else queued."""
    try:
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise FederationError(f"{path} is larger than {MAX_BUNDLE_BYTES // 1_048_576} MiB")
        body = path.read_bytes()
    except OSError as exc:
        raise FederationError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        bundle = orjson.loads(body)  # strict: refuses NaN and Infinity, which the stdlib would accept
    except ValueError as exc:
        raise FederationError(f"{path} is not JSON: {exc}") from None
    sig_file = signature_path(path)
    signer: str | None = None
    if sig_file.exists():
        try:
            sig = orjson.loads(sig_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise FederationError(f"cannot read signature {sig_file}: {exc}") from None
        claimed = str(sig.get("node", "")).upper() if isinstance(sig, dict) else ""
        if claimed not in node.policy.partners:
            raise FederationError(f"{path} is signed by {claimed or 'an unnamed node'}, which is not a partner")
        try:
            signer = verify_file_bytes(sig, body, public_key=node.policy.partners[claimed].public_key, me=node.name,
                                       max_age_days=node.policy.bundle_max_age_days)
        except SignatureError as exc:
            raise FederationError(f"{path}: {exc}") from None
        if partner and partner.upper() != signer:
            raise FederationError(f"{path} is signed by {signer}, not by {partner.upper()}")
    source = (signer or partner or "").upper()
    if not source:
        raise FederationError(f"{path} is not signed; say which partner it comes from with --partner")
    try:
        bundle_id, objects = bundle_objects(bundle)
        with node.store.begin() as conn:
            if bundle_id:
                remember(conn, f"bundle:{bundle_id}", source)
            report = import_objects(conn, node.policy, source, objects, signed=signer is not None, bundle_id=bundle_id)
            apply_retention(conn, node.policy)  # like a pull: keep partners' word no longer than allowed
            audit.append(conn, f"federation:{node.name}", "federation.import", source,
                         {k: v for k, v in report.as_dict().items() if k != "rejected"} | {"file": str(path)})
    except ImportRejected as exc:
        raise FederationError(f"{path}: {exc}") from None
    except SignatureError as exc:
        raise FederationError(f"{path}: {exc}") from None
    return report
