"""Authenticated warnings: Ed25519 signatures (PyNaCl) and short verification codes.

Every warning carries a short code (``K7M2-9QXD``: 8 characters from an alphabet without look-alike
characters, ~39 bits) and is signed over a canonical payload by the node's warning key. The private
key lives in the node's data directory (``keys/warning-signing.ed25519``, mode 0600); the public key
is registered in ``fw_signing_keys`` so that anyone can check a warning through the public route
``GET /v1/warnings/verify/{code}``, and a partner country can check the signature offline with the
key from ``GET /v1/signing-keys``. The payload holds a salted hash of the recipient, never the number.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from sqlalchemy import Connection, select

from forewarn.forewarning import tables as ft
from forewarn.model.indicators import utcnow
from forewarn.store import schema as t
from forewarn.store.db import insert_ignoring_duplicates, utc

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud or typed without error
CODE_RE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-?[2-9A-HJKMNP-Z]{4}$")
KEY_FILE = Path("keys") / "warning-signing.ed25519"
PAYLOAD_VERSION = 1


class SigningError(RuntimeError):
    """The signing key cannot be read or created."""


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_code(raw: str) -> str | None:
    """``k7m2 9qxd`` -> ``K7M2-9QXD``; None when it cannot be a code."""
    text = re.sub(r"[\s\-]", "", raw.strip().upper())
    if len(text) != 8 or any(ch not in CODE_ALPHABET for ch in text):
        return None
    return f"{text[:4]}-{text[4:]}"


def recipient_hash(code: str, recipient: str) -> str:
    return hashlib.sha256(f"{code}:{recipient}".encode()).hexdigest()


def body_hash(body: str) -> str:
    return hashlib.sha256(" ".join(body.split()).encode("utf-8")).hexdigest()


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def warning_payload(*, warning_id: str, code: str, issuer: str, issued_at: datetime, recipient: str,
                    language: str, scam_type: str | None, body: str) -> dict[str, Any]:
    return {"v": PAYLOAD_VERSION, "warning_id": warning_id, "code": code, "issuer": issuer,
            "issued_at": utc(issued_at).isoformat(),  # type: ignore[union-attr]
            "recipient_sha256": recipient_hash(code, recipient), "language": language,
            "scam_type": scam_type, "body_sha256": body_hash(body)}


def key_id_of(verify_key: VerifyKey) -> str:
    return hashlib.sha256(bytes(verify_key)).hexdigest()[:16]


@dataclass
class Signer:
    """The node's warning-signing key."""

    signing_key: SigningKey
    issuer: str

    @property
    def key_id(self) -> str:
        return key_id_of(self.signing_key.verify_key)

    @property
    def public_key_hex(self) -> str:
        return bytes(self.signing_key.verify_key).hex()

    def sign(self, payload: dict[str, Any]) -> str:
        """``key_id:base64(signature)`` over the canonical payload."""
        sig = self.signing_key.sign(canonical(payload)).signature
        return f"{self.key_id}:{base64.b64encode(sig).decode()}"

    def register(self, conn: Connection) -> None:
        insert_ignoring_duplicates(conn, ft.fw_signing_keys, [{
            "key_id": self.key_id, "public_key": self.public_key_hex, "issuer": self.issuer,
            "created_at": utcnow(), "retired_at": None}], ["key_id"])

    @classmethod
    def load_or_create(cls, data_dir: Path, issuer: str) -> Signer:
        path = data_dir / KEY_FILE
        try:
            if path.exists():
                seed = bytes.fromhex(path.read_text().strip())
                if len(seed) != 32:
                    raise SigningError(f"signing key {path} is not a 32-byte hex seed")
                return cls(SigningKey(seed), issuer)
            path.parent.mkdir(parents=True, exist_ok=True)
            key = SigningKey.generate()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(bytes(key).hex())
            return cls(key, issuer)
        except FileExistsError:  # another process created it between our check and open
            return cls.load_or_create(data_dir, issuer)
        except (OSError, ValueError) as exc:
            raise SigningError(f"cannot use signing key {path}: {exc}") from None


def verify_signature(payload: dict[str, Any], signature: str, public_key_hex: str) -> bool:
    """Offline check a partner can run: does ``signature`` (``key_id:base64``) sign ``payload``?"""
    try:
        key_id, _, b64 = signature.partition(":")
        vk = VerifyKey(bytes.fromhex(public_key_hex))
        if key_id != key_id_of(vk):
            return False
        vk.verify(canonical(payload), base64.b64decode(b64, validate=True))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False


@dataclass
class Verification:
    code: str
    found: bool
    genuine: bool
    issuer: str | None = None
    issued_at: datetime | None = None
    language: str | None = None
    scam_type: str | None = None
    recipient_masked: str | None = None
    text_matches: bool | None = None
    recipient_matches: bool | None = None
    payload: dict[str, Any] | None = None
    signature: str | None = None
    public_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def mask(recipient: str) -> str:
    return recipient[:3] + "*" * max(0, len(recipient) - 7) + recipient[-4:] if len(recipient) > 7 else "***"


def verify_code(conn: Connection, raw_code: str, *, text: str | None = None,
                recipient: str | None = None) -> Verification:
    """Is the warning with this code genuine? Optionally: is ``text`` its body, ``recipient`` its addressee?

    Genuine means: a warning with this code exists, its stored signature verifies against a
    registered key of this node, and the signed payload matches the stored warning.
    """
    code = normalise_code(raw_code)
    if code is None:
        return Verification(code=raw_code[:20], found=False, genuine=False)
    row = conn.execute(select(t.warnings_, ft.fw_warning_meta.c.signed_payload, ft.fw_warning_meta.c.subscriber)
                       .join(ft.fw_warning_meta, ft.fw_warning_meta.c.warning_id == t.warnings_.c.warning_id)
                       .where(t.warnings_.c.verification_code == code)).mappings().first()
    if row is None:
        return Verification(code=code, found=False, genuine=False)
    payload = json.loads(row["signed_payload"])
    signature = row["signature"] or ""
    key_row = conn.execute(select(ft.fw_signing_keys).where(
        ft.fw_signing_keys.c.key_id == signature.partition(":")[0])).mappings().first()
    expected = warning_payload(warning_id=row["warning_id"], code=code, issuer=payload.get("issuer", ""),
                               issued_at=datetime.fromisoformat(payload["issued_at"]), recipient=row["recipient"],
                               language=row["language"], scam_type=row["scam_type"], body=row["body"])
    genuine = key_row is not None and payload == expected and verify_signature(payload, signature,
                                                                                key_row["public_key"])
    result = Verification(code=code, found=True, genuine=genuine, issuer=payload.get("issuer"),
                          issued_at=datetime.fromisoformat(payload["issued_at"]), language=row["language"],
                          scam_type=row["scam_type"], recipient_masked=mask(row["recipient"]), payload=payload,
                          signature=signature, public_key=key_row["public_key"] if key_row else None)
    if text is not None:
        result.text_matches = body_hash(row["body"]) == body_hash(text) or " ".join(row["body"].split()) in " ".join(text.split())
    if recipient is not None:
        result.recipient_matches = recipient_hash(code, recipient) == payload["recipient_sha256"]
    return result


def public_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(ft.fw_signing_keys).order_by(ft.fw_signing_keys.c.created_at)).mappings()
    return [{"key_id": r["key_id"], "public_key": r["public_key"], "algorithm": "Ed25519", "issuer": r["issuer"],
             "created_at": utc(r["created_at"]), "retired_at": utc(r["retired_at"])} for r in rows]
