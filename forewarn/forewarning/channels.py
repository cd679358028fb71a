"""Delivery channels: small adapters with one method, ``send(message) -> provider reference``.

- :class:`KannelSMS`: Kannel's HTTP ``sendsms`` interface (Kannel bridges to the operator's SMSC
  over SMPP); UCS-2 for any non-ASCII text.
- :class:`SMTPMail`: e-mail over SMTP; the idempotency key is the Message-ID, so a resent copy is
  recognisable.
- :class:`Webhook`: HTTP POST of JSON, signed with the node's Ed25519 key (and HMAC-SHA256 when a
  shared secret is configured), carrying an ``Idempotency-Key`` header.
- :class:`FileSink`: JSON lines in a file, itself idempotent by key (the demo's SMS and e-mail);
  ``console`` prints too.

A channel raises :class:`DeliveryError` with ``permanent=True`` when retrying cannot help.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import httpx

from forewarn.forewarning.outbox import OutboxMessage
from forewarn.forewarning.signing import Signer


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    name: str

    def send(self, message: OutboxMessage) -> str: ...


@dataclass
class KannelSMS:
    """Kannel ``/cgi-bin/sendsms``; replies ``0: Accepted for delivery`` or ``3: Queued for later delivery``."""

    base_url: str
    username: str
    password: str
    sender: str = "FOREWARN"
    timeout: float = 10.0
    name: str = "sms"
    _client: httpx.Client | None = field(default=None, repr=False)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def send(self, message: OutboxMessage) -> str:
        text = message.body
        params = {"username": self.username, "password": self.password, "to": message.recipient,
                  "from": self.sender, "text": text, "charset": "UTF-8",
                  "coding": "0" if text.isascii() else "2"}
        try:
            resp = self._http().get(self.base_url.rstrip("/") + "/cgi-bin/sendsms", params=params)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"kannel unreachable: {type(exc).__name__}: {exc}") from None
        answer = resp.text.strip()[:200]
        if resp.status_code in (200, 202) and answer[:2] in ("0:", "3:"):
            return f"kannel:{answer}"
        permanent = resp.status_code in (400, 403, 404)
        raise DeliveryError(f"kannel refused ({resp.status_code}): {answer}", permanent=permanent)


def message_id_for(idempotency_key: str) -> str:
    """A Message-ID derived from the idempotency key, so a re-sent copy carries the same one."""
    return "<" + re.sub(r"[^A-Za-z0-9.\-]", ".", idempotency_key)[:200] + "@forewarn>"


@dataclass
class SMTPMail:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0
    name: str = "email"

    def send(self, message: OutboxMessage) -> str:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject or "Forewarn"
        mail["Message-ID"] = message_id_for(message.idempotency_key)
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from None
        if refused:
            raise DeliveryError(f"recipient refused: {refused}", permanent=True)
        return f"smtp:{mail['Message-ID']}"


def webhook_signature_headers(body: bytes, signer: Signer, idempotency_key: str, timestamp: int,
                              hmac_secret: str | None = None) -> dict[str, str]:
    """Headers proving the request came from this node: Ed25519 over ``"{timestamp}.{body}"``."""
    signed = f"{timestamp}.".encode() + body
    sig = base64.b64encode(signer.signing_key.sign(signed).signature).decode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
               "X-Forewarn-Timestamp": str(timestamp), "X-Forewarn-Key-Id": signer.key_id,
               "X-Forewarn-Signature": f"ed25519={sig}"}
    if hmac_secret:
        headers["X-Forewarn-HMAC"] = "sha256=" + hmac.new(hmac_secret.encode(), signed, hashlib.sha256).hexdigest()
    return headers


@dataclass
class Webhook:
    """POST ``message.payload`` as JSON to ``message.recipient`` (a URL)."""

    signer: Signer
    timeout: float = 10.0
    name: str = "webhook"
    _client: httpx.Client | None = field(default=None, repr=False)

    def send(self, message: OutboxMessage) -> str:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        body = json.dumps({"idempotency_key": message.idempotency_key, **message.payload},
                          sort_keys=True, separators=(",", ":"), default=str).encode()
        secret_env = message.payload.get("hmac_secret_env")
        secret = os.environ.get(str(secret_env)) if secret_env else None
        headers = webhook_signature_headers(body, self.signer, message.idempotency_key, int(time.time()), secret)
        try:
            resp = self._client.post(message.recipient, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}: {exc}") from None
        if 200 <= resp.status_code < 300 or resp.status_code == 409:  # 409: the receiver already has this key
            return f"webhook:{resp.status_code}"
        permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 425, 429)
        raise DeliveryError(f"webhook answered {resp.status_code}: {resp.text[:200]}", permanent=permanent)


@dataclass
class FileSink:
    """Appends one JSON line per message; a key already in the file is not written again."""

    path: Path
    name: str = "file"
    echo: bool = False
    delay_s: float = 0.0  # a slow receiver, for demonstrations and the crash test
    _keys: set[str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _load(self) -> set[str]:
        if self._keys is None:
            self._keys = set()
            if self.path.exists():
                with self.path.open(encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            self._keys.add(json.loads(line)["idempotency_key"])
                        except (ValueError, KeyError):
                            continue  # a torn last line from a crash: its message will be resent
        return self._keys

    def send(self, message: OutboxMessage) -> str:
        with self._lock:
            keys = self._load()
            if message.idempotency_key in keys:
                return f"file:duplicate:{message.idempotency_key}"
            if self.delay_s:
                time.sleep(self.delay_s)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"idempotency_key": message.idempotency_key, "channel": message.channel,
                               "to": message.recipient, "subject": message.subject, "body": message.body},
                              ensure_ascii=False)
            with self.path.open("a", encoding="utf-8") as fh:
                if fh.tell() and not self._ends_with_newline():
                    fh.write("\n")  # never glue a line onto a torn one
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            keys.add(message.idempotency_key)
        if self.echo:
            print(f"[{message.channel} → {message.recipient}] {message.body}", flush=True)
        return f"file:{self.path.name}"

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"


def channels_from_env(data_dir: Path, signer: Signer, sender_id: str = "FOREWARN", echo: bool = False,
                      env: dict[str, str] | None = None) -> dict[str, Channel]:
    """The node's channels: Kannel and SMTP when configured (``FOREWARN_KANNEL_URL``, ``_USER``,
    ``_PASSWORD``; ``FOREWARN_SMTP_HOST``, ``_PORT``, ``_FROM``, ``_USER``, ``_PASSWORD``,
    ``_STARTTLS``), else file sinks under ``DATA_DIR/outbox/``; webhooks always; ``console`` prints."""
    env = dict(os.environ if env is None else env)
    outdir = data_dir / "outbox"
    chans: dict[str, Channel] = {}
    if env.get("FOREWARN_KANNEL_URL"):
        chans["sms"] = KannelSMS(env["FOREWARN_KANNEL_URL"], env.get("FOREWARN_KANNEL_USER", ""),
                                 env.get("FOREWARN_KANNEL_PASSWORD", ""), sender=sender_id)
    else:
        chans["sms"] = FileSink(outdir / "sms.jsonl", name="sms", echo=echo)
    if env.get("FOREWARN_SMTP_HOST"):
        chans["email"] = SMTPMail(env["FOREWARN_SMTP_HOST"], int(env.get("FOREWARN_SMTP_PORT", "25")),
                                  env.get("FOREWARN_SMTP_FROM", "forewarn@localhost"),
                                  env.get("FOREWARN_SMTP_USER"), env.get("FOREWARN_SMTP_PASSWORD"),
                                  env.get("FOREWARN_SMTP_STARTTLS", "") in ("1", "true", "yes"))
    else:
        chans["email"] = FileSink(outdir / "email.jsonl", name="email", echo=echo)
    chans["webhook"] = Webhook(signer)
    chans["console"] = FileSink(outdir / "console.jsonl", name="console", echo=True)
    return chans
