"""The console's signed session cookie.

Logging in exchanges an API key (checked against the stored hashes) for a cookie holding the key's
id, name and role, an expiry and a random session id, signed with HMAC-SHA256 under a secret kept
in the node's data directory (created on first use, mode 0600). Every request re-checks that the
key is still active, so revoking a key ends its sessions at once. Forms carry a CSRF token derived
from the session id; the cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from sqlalchemy import Connection, select

from forewarn.api.auth import Principal, Role
from forewarn.store import schema as t

SESSION_COOKIE = "fw_session"
SESSION_SECONDS = 8 * 3600
SECRET_FILE = "web-session.key"
# Roles that may use the console at all; what each sees is decided per page.
CONSOLE_ROLES = frozenset({Role.ADMIN, Role.ANALYST, Role.OFFICER, Role.PARTNER})

_secret_lock = Lock()
_secrets: dict[Path, bytes] = {}


def session_secret(data_dir: Path) -> bytes:
    """The node's signing secret, created once per data directory."""
    path = (data_dir / SECRET_FILE).resolve()
    with _secret_lock:
        if path in _secrets:
            return _secrets[path]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        value = path.read_bytes()
        if len(value) < 32:
            raise RuntimeError(f"{path} is damaged (shorter than 32 bytes); delete it to end all sessions")
        _secrets[path] = value
        return value


@dataclass(frozen=True)
class Session:
    key_id: str
    name: str
    role: Role
    session_id: str
    expires: int

    @property
    def principal(self) -> Principal:
        return Principal(self.key_id, self.name, self.role)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode("ascii"), hashlib.sha256).hexdigest()


def issue(secret: bytes, principal: Principal, now: float | None = None) -> tuple[str, Session]:
    """A signed cookie value for ``principal``."""
    expires = int((now or time.time()) + SESSION_SECONDS)
    session = Session(principal.key_id, principal.name, principal.role, secrets.token_hex(12), expires)
    body = _b64(json.dumps({"k": session.key_id, "n": session.name, "r": session.role.value,
                            "s": session.session_id, "e": expires}, separators=(",", ":")).encode("utf-8"))
    return f"{body}.{_sign(secret, body)}", session


def read(secret: bytes, cookie: str | None, now: float | None = None) -> Session | None:
    """The session in a cookie, or None when absent, forged, malformed or expired."""
    if not cookie or "." not in cookie or len(cookie) > 4096:
        return None
    body, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(_sign(secret, body), signature):
        return None
    try:
        data = json.loads(_unb64(body))
        session = Session(str(data["k"]), str(data["n"]), Role(data["r"]), str(data["s"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires < (now or time.time()):
        return None
    return session


def key_is_active(conn: Connection, key_id: str) -> bool:
    row = conn.execute(select(t.api_keys.c.revoked_at).where(t.api_keys.c.key_id == key_id)).first()
    return row is not None and row.revoked_at is None


def csrf_token(secret: bytes, session: Session) -> str:
    return _sign(secret, f"csrf:{session.session_id}")[:32]


def csrf_ok(secret: bytes, session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(secret, session), str(token))
