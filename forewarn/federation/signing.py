"""Integrity and trust between nodes: Ed25519 node keys, signed bundles and pages, replay protection.

Every bundle or TAXII page a node emits is signed by its node key over the exact bytes plus who sent
it, to whom, when and a nonce. A receiver checks the signature against the partner key *pinned* in
its own policy (never a key that arrives with the message), refuses timestamps outside the replay
window, and refuses any nonce or bundle id it has already seen.

A TAXII page's body carries ``more`` and ``next``, but its resume cursor travels in response headers
(``X-TAXII-Date-Added-First/-Last``), and which query it answers is not in the body at all. So a
signature may also bind named headers (listed, in order, in ``X-Forewarn-Signed-Headers``; a header
bound while absent is signed as absent, so one cannot be added in transit either), and the server
echoes the request's query in ``X-Forewarn-Request-Query`` among them. A receiver names the headers
it relies on and refuses a signature that does not cover them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from sqlalchemy import Connection, delete

from forewarn.federation.tables import federation_seen
from forewarn.model.indicators import utcnow
from forewarn.store.db import insert_ignoring_duplicates

PROTOCOL = b"forewarn-federation-v1"
H_NODE, H_TO, H_TS, H_NONCE, H_SIG = (
    "X-Forewarn-Node", "X-Forewarn-Recipient", "X-Forewarn-Timestamp", "X-Forewarn-Nonce", "X-Forewarn-Signature")
H_BOUND = "X-Forewarn-Signed-Headers"
H_QUERY = "X-Forewarn-Request-Query"
# What a puller trusts beyond the body (whose ``more``/``next`` the body hash covers): the resume
# cursor headers, and the echo of the query the page answers (so a rewritten ``next`` shows).
TAXII_BOUND_HEADERS = ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last", H_QUERY)
_BOUND_MARK = b"bound-headers-v1"


class SignatureError(ValueError):
    """A signature, timestamp or nonce that does not check out; the message says which."""


class ReplayError(SignatureError):
    """A message or bundle already seen, or outside the replay window."""


@dataclass(frozen=True)
class NodeKey:
    node: str
    signing_key: SigningKey

    @property
    def public_key(self) -> str:
        return base64.b64encode(bytes(self.signing_key.verify_key)).decode()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.signing_key.sign(message).signature).decode()


def generate_key(path: Path, node: str, *, overwrite: bool = False) -> NodeKey:
    """Create the node's Ed25519 key file (mode 600); refuses to replace one unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; a new key would break every partner's pin")
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(seed).decode() + "\n")
    return NodeKey(node.upper(), SigningKey(seed))


def load_key(path: Path, node: str) -> NodeKey:
    try:
        seed = base64.b64decode(path.read_text().strip(), validate=True)
    except OSError as exc:
        raise SignatureError(f"cannot read node key {path}: {exc.strerror or exc}; "
                             "create one with `forewarn federation keygen`") from None
    except ValueError:
        raise SignatureError(f"node key {path} is not base64") from None
    if len(seed) != 32:
        raise SignatureError(f"node key {path} is not a 32-byte Ed25519 seed")
    return NodeKey(node.upper(), SigningKey(seed))


def verify_key(public_key_b64: str | None, partner: str) -> VerifyKey:
    if not public_key_b64:
        raise SignatureError(f"no public key pinned for partner {partner} in the policy")
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        return VerifyKey(raw)
    except Exception:
        raise SignatureError(f"the key pinned for partner {partner} is not a base64 Ed25519 public key") from None


def canonical_query(items: Iterable[tuple[str, str]]) -> str:
    """A request's query parameters in one form both ends compute alike, whatever their encoding."""
    return urlencode(sorted(items))


def _bound_lines(names: Sequence[str], get: Any) -> list[bytes]:
    lines = [_BOUND_MARK]
    for name in names:
        value = get(name)
        if value is not None and ("\n" in value or "\r" in value):
            raise SignatureError(f"header {name} holds a line break")
        # "!" for absent and "=" before a value keep "absent" and "empty" apart
        lines.append(name.lower().encode() + (b"!" if value is None else b"=" + value.encode()))
    return lines


def _message(sender: str, recipient: str, timestamp: str, nonce: str, purpose: str, body: bytes,
             bound: list[bytes] | None = None) -> bytes:
    # Without bound headers the message is the v1 one, so bundle files and pushes verify as before;
    # with them it differs, so stripping X-Forewarn-Signed-Headers in transit breaks the signature.
    return b"\n".join([PROTOCOL, purpose.encode(), sender.upper().encode(), recipient.upper().encode(),
                       timestamp.encode(), nonce.encode(), hashlib.sha256(body).hexdigest().encode(),
                       *(bound or [])])


def _bound_names(value: str | None) -> list[str]:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    if len({n.lower() for n in names}) != len(names):
        raise SignatureError(f"{H_BOUND} names a header twice")
    return names


def sign_headers(key: NodeKey, recipient: str, body: bytes, purpose: str, nonce: str | None = None,
                 bind: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Headers that sign ``body`` from this node to ``recipient`` (``purpose`` binds it to one use).

    ``bind`` maps header names to the values sent with them (``None``: signed as absent)."""
    stamp = str(int(time.time()))
    nonce = nonce or secrets.token_hex(16)
    names = list(bind or {})
    if any("," in n for n in names):
        raise ValueError("a bound header name cannot hold a comma")
    bound = _bound_lines(names, (bind or {}).get) if names else None
    sig = key.sign(_message(key.node, recipient, stamp, nonce, purpose, body, bound))
    headers = {H_NODE: key.node, H_TO: recipient.upper(), H_TS: stamp, H_NONCE: nonce, H_SIG: sig}
    if names:
        headers[H_BOUND] = ",".join(names)
    return headers


def verify_headers(headers: Any, body: bytes, *, partner: str, public_key: str | None, me: str, purpose: str,
                   window_seconds: int, expect_nonce: str | None = None, require_bound: Iterable[str] = ()) -> str:
    """Check signed headers from ``partner``; returns the nonce (for the replay store).

    ``require_bound``: headers the caller will rely on, which the signature must cover."""
    get = headers.get
    names = _bound_names(get(H_BOUND))
    missing = sorted({r.lower() for r in require_bound} - {n.lower() for n in names})
    if missing:
        raise SignatureError(f"the signature does not cover {', '.join(missing)}, which could then be altered "
                             "in transit (a partner on a version that does not bind them must upgrade)")
    sender, recipient, stamp, nonce, sig = (get(H_NODE), get(H_TO), get(H_TS), get(H_NONCE), get(H_SIG))
    if not all((sender, recipient, stamp, nonce, sig)):
        raise SignatureError("the message is not signed (X-Forewarn-* headers missing)")
    if sender.upper() != partner.upper():
        raise SignatureError(f"signed by {sender!r}, expected {partner}")
    if recipient.upper() != me.upper():
        raise SignatureError(f"addressed to {recipient!r}, not to this node {me}")
    if expect_nonce is not None and nonce != expect_nonce:
        raise ReplayError("the response does not answer this request (nonce differs)")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > window_seconds:
        raise ReplayError(f"timestamp outside the {window_seconds}s replay window")
    pinned = verify_key(public_key, partner)
    try:
        pinned.verify(_message(sender, recipient, stamp, nonce, purpose, body,
                               _bound_lines(names, get) if names else None),
                      base64.b64decode(sig, validate=True))
    except (BadSignatureError, ValueError):
        raise SignatureError(f"bad signature: not signed by {partner}'s pinned key, or its body or signed headers "
                             f"({', '.join(names) or 'none'}) altered") from None
    return nonce


def remember(conn: Connection, key: str, partner: str) -> None:
    """Record a nonce or bundle id; raises :class:`ReplayError` if it was seen before."""
    if not insert_ignoring_duplicates(conn, federation_seen, [{"key": key[:200], "partner": partner,
                                                                "seen_at": utcnow()}], ["key"]):
        raise ReplayError(f"already received ({key.split(':', 1)[0]} {key.rsplit(':', 1)[-1][:48]})")


def forget_older_than(conn: Connection, days: int) -> int:
    """Nonces only need keeping for the replay window; bundle ids for the bundle age limit."""
    cutoff = utcnow() - timedelta(days=days)
    return int(conn.execute(delete(federation_seen).where(federation_seen.c.seen_at < cutoff)).rowcount or 0)


# --- bundle files: a detached signature beside BUNDLE.json -----------------------------------------

def sign_file_bytes(key: NodeKey, recipient: str, body: bytes, bundle_id: str) -> dict[str, Any]:
    headers = sign_headers(key, recipient or "ANY", body, "bundle-file:" + bundle_id)
    return {"node": headers[H_NODE], "recipient": headers[H_TO], "timestamp": int(headers[H_TS]),
            "nonce": headers[H_NONCE], "bundle_id": bundle_id, "sha256": hashlib.sha256(body).hexdigest(),
            "signature": headers[H_SIG], "public_key": key.public_key}


def verify_file_bytes(sig: dict[str, Any], body: bytes, *, public_key: str | None, me: str,
                      max_age_days: int) -> str:
    """Check a detached bundle signature; returns the signing node. The key in the file is never trusted."""
    if not isinstance(sig, dict):
        raise SignatureError("the signature file is not a JSON object")
    sender = str(sig.get("node", ""))
    recipient = str(sig.get("recipient", ""))
    if recipient not in (me.upper(), "ANY"):
        raise SignatureError(f"the bundle was signed for {recipient!r}, not for this node {me}")
    headers = {H_NODE: sender, H_TO: recipient, H_TS: str(sig.get("timestamp", "")), H_NONCE: str(sig.get("nonce", "")),
               H_SIG: str(sig.get("signature", ""))}
    bundle_id = str(sig.get("bundle_id", ""))
    verify_headers(headers, body, partner=sender, public_key=public_key, me=recipient,
                   purpose="bundle-file:" + bundle_id, window_seconds=max_age_days * 86_400)
    return sender


def canonical_json(data: Any) -> bytes:
    """Compact UTF-8 JSON in the data's own key order: how pages and bundle files are rendered."""
    return orjson.dumps(data)
