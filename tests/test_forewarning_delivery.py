"""Delivery that loses nothing: outbox leases, retries with back-off, dead letters, idempotent
re-sends after a crash; real channels (Kannel with its fake SMSC, SMTP, signed webhooks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
import yaml
from nacl.signing import VerifyKey
from sqlalchemy import func, select

from forewarn.config import Settings
from forewarn.forewarning import outbox, run
from forewarn.forewarning import tables as ft
from forewarn.forewarning.channels import DeliveryError, FileSink, KannelSMS, SMTPMail, Webhook
from forewarn.forewarning.delivery import deliver
from forewarn.forewarning.examples import build_scenario
from forewarn.forewarning.interventions import ensure_signing_key
from forewarn.forewarning.outbox import OutboxMessage
from forewarn.forewarning.policy import Policy
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

START = datetime(2026, 3, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def fast_policy(tmp_path: Path, **delivery: float) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"delivery": {"max_attempts": 3, "backoff_base_seconds": 0.01,
                                                 "backoff_max_seconds": 0.02, "lease_seconds": 1, **delivery}}))
    return Policy.load(path)


def seed_warnings(store: Store, victims: int) -> int:
    sc = build_scenario(victims=victims, bystanders=5, start=START)
    with store.begin() as conn:
        repo.insert_events(conn, sc.events)
        for ind in sc.indicators:
            repo.upsert_indicator(conn, ind)
    run(store)
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ft.fw_outbox)
                                .where(ft.fw_outbox.c.channel == "sms")).scalar_one())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Flaky:
    name = "sms"

    def __init__(self, failures: int, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.sent: list[str] = []

    def send(self, message: OutboxMessage) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryError("operator SMSC busy", permanent=self.permanent)
        self.sent.append(message.idempotency_key)
        return "ok"


def drain(store: Store, chans, policy: Policy, rounds: int = 50):  # type: ignore[no-untyped-def]
    total = {"delivered": 0, "dead": 0, "retried": 0}
    for _ in range(rounds):
        report = deliver(store, chans, policy=policy)
        for k in total:
            total[k] += getattr(report, k)
        with store.engine.connect() as conn:
            counts = outbox.status_counts(conn)
        if not counts.get("pending") and not counts.get("sending"):
            break
        time.sleep(0.03)
    return total


def test_retries_with_backoff_then_delivers(store: Store, tmp_path: Path) -> None:
    n = seed_warnings(store, 3)
    flaky = Flaky(failures=2)
    totals = drain(store, {"sms": flaky}, fast_policy(tmp_path))
    assert totals["delivered"] == n and totals["retried"] == 2 and totals["dead"] == 0
    assert len(flaky.sent) == len(set(flaky.sent)) == n
    with store.engine.connect() as conn:
        statuses = {w.status.value for w in repo.list_warnings(conn)}
    assert statuses == {"sent"}


def test_dead_letters_and_requeue(store: Store, tmp_path: Path) -> None:
    n = seed_warnings(store, 2)
    policy = fast_policy(tmp_path)
    totals = drain(store, {"sms": Flaky(failures=10**6)}, policy)
    assert totals["dead"] == n
    with store.engine.connect() as conn:
        dead = outbox.dead_letters(conn)
        assert {w.status.value for w in repo.list_warnings(conn)} == {"failed"}
    limit = Policy.load().delivery.max_attempts  # fixed per message when it was queued
    assert len(dead) == n and all(d["attempts"] == limit and "SMSC busy" in d["reason"] for d in dead)
    with store.begin() as conn:
        for d in dead:
            assert outbox.requeue_dead(conn, d["message_id"])
    ok = Flaky(failures=0)
    assert drain(store, {"sms": ok}, policy)["delivered"] == n
    with store.engine.connect() as conn:
        assert outbox.dead_letters(conn) == []


def test_permanent_errors_dead_letter_at_once(store: Store, tmp_path: Path) -> None:
    n = seed_warnings(store, 2)
    totals = drain(store, {"sms": Flaky(failures=10, permanent=True)}, fast_policy(tmp_path))
    assert totals["dead"] == n and totals["retried"] == 0


def test_a_crash_between_send_and_commit_resends_once(store: Store, tmp_path: Path) -> None:
    seed_warnings(store, 1)
    sink = FileSink(tmp_path / "sms.jsonl", name="sms")
    with store.begin() as conn:
        (claimed,) = outbox.claim(conn, "doomed", limit=1, lease_seconds=0.2)
    sink.send(claimed.message)  # the receiver got it... and the worker dies before marking it delivered
    time.sleep(0.3)
    report = deliver(store, {"sms": FileSink(tmp_path / "sms.jsonl", name="sms")}, policy=fast_policy(tmp_path))
    assert report.delivered == 1
    lines = (tmp_path / "sms.jsonl").read_text().splitlines()
    assert len(lines) == 1
    with store.engine.connect() as conn:
        attempts = conn.execute(select(ft.fw_delivery_attempts).order_by(ft.fw_delivery_attempts.c.id)).all()
    assert [a.outcome for a in attempts] == [None, "delivered"]  # the first attempt never finished


def test_a_stale_worker_cannot_mark_a_reclaimed_message(store: Store) -> None:
    seed_warnings(store, 1)
    with store.begin() as conn:
        (old,) = outbox.claim(conn, "slow", limit=1, lease_seconds=0.05)
    time.sleep(0.1)
    with store.begin() as conn:
        (new,) = outbox.claim(conn, "fresh", limit=1, lease_seconds=60)
        assert not outbox.mark_delivered(conn, old, "late")
        assert outbox.mark_delivered(conn, new, "ok")


def test_kill_mid_delivery_then_every_warning_exactly_once(store: Store, settings: Settings, tmp_path: Path) -> None:
    n = seed_warnings(store, 40)
    assert n == 40
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({"delivery": {"lease_seconds": 1}}))
    sink = settings.data_dir / "outbox" / "sms.jsonl"
    env = {**os.environ, "FOREWARN_CENTRES_LOOP": "0"}
    env.pop("FOREWARN_KANNEL_URL", None)
    cmd = [sys.executable, "-m", "forewarn.cli", "forewarning", "deliver", "--data-dir", str(settings.data_dir),
           "--policy", str(policy_file), "--batch", "10"]
    proc = subprocess.Popen([*cmd, "--follow", "--delay", "0.1"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sink.exists() and len(sink.read_text().splitlines()) >= 12:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: leases are left behind
    proc.wait(timeout=10)
    delivered_before = len(sink.read_text().splitlines())
    assert 12 <= delivered_before < n, "the worker should die mid-way"
    with store.engine.connect() as conn:
        assert outbox.status_counts(conn).get("sending", 0) > 0  # claimed, in flight when killed
    time.sleep(1.1)  # the dead worker's lease expires
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    keys = [json.loads(line)["idempotency_key"] for line in sink.read_text().splitlines()]
    with store.engine.connect() as conn:
        expected = {k for (k,) in conn.execute(select(ft.fw_outbox.c.idempotency_key)
                                               .where(ft.fw_outbox.c.channel == "sms"))}
        counts = outbox.status_counts(conn)
    assert len(keys) == len(set(keys)) == n  # every warning exactly once
    assert set(keys) == expected
    assert counts == {"delivered": n}


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_signed_webhook_is_verifiable(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HOLD_SECRET", "s3cret")
    signer = ensure_signing_key(store)
    url = f"http://127.0.0.1:{server.server_address[1]}/holds"
    try:
        with store.begin() as conn:
            outbox.enqueue(conn, channel="webhook", recipient=url, body="hold", idempotency_key="hold:task-1",
                           payload={"type": "payment_hold_request", "task_id": "task-1", "hmac_secret_env": "HOLD_SECRET"})
        report = deliver(store, {"webhook": Webhook(signer)}, policy=fast_policy(tmp_path))
    finally:
        server.shutdown()
    assert report.delivered == 1
    (headers, body), = _Receiver.received
    assert headers["Idempotency-Key"] == "hold:task-1" and json.loads(body)["task_id"] == "task-1"
    signed = headers["X-Forewarn-Timestamp"].encode() + b"." + body
    sig = base64.b64decode(headers["X-Forewarn-Signature"].removeprefix("ed25519="))
    VerifyKey(bytes.fromhex(signer.public_key_hex)).verify(signed, sig)  # raises if forged
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert headers["X-Forewarn-HMAC"] == f"sha256={expected}"


def test_smtp_delivery(store: Store, tmp_path: Path) -> None:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is in the test extras")
    from aiosmtpd.handlers import Sink  # noqa: F401

    got: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
            got.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with store.begin() as conn:
            outbox.enqueue(conn, channel="email", recipient="duty@centre.invalid", subject="[Forewarn] task",
                           body="New callback task", idempotency_key="notify:task-9")
        report = deliver(store, {"email": SMTPMail("127.0.0.1", port, "forewarn@node.invalid")},
                         policy=fast_policy(tmp_path))
    finally:
        controller.stop()
    assert report.delivered == 1
    text = got[0].decode()
    assert "Message-ID: <notify.task-9@forewarn>" in text and "New callback task" in text


KANNEL = {"bearerbox": shutil.which("bearerbox") or "/usr/sbin/bearerbox",
          "smsbox": shutil.which("smsbox") or "/usr/sbin/smsbox",
          "fakesmsc": "/usr/lib/kannel/test/fakesmsc"}


@pytest.fixture
def kannel(tmp_path: Path):  # type: ignore[no-untyped-def]
    missing = [name for name, path in KANNEL.items() if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(f"Kannel not installed ({', '.join(missing)} missing): apt-get install kannel kannel-extras")
    admin, smsbox_port, smsc, sendsms = (free_port() for _ in range(4))
    conf = tmp_path / "kannel.conf"
    conf.write_text(f"""group = core
admin-port = {admin}
admin-password = {os.urandom(6).hex()}
smsbox-port = {smsbox_port}
box-allow-ip = 127.0.0.1
log-level = 2

group = smsc
smsc = fake
smsc-id = FAKE
port = {smsc}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
log-level = 2

group = sendsms-user
username = forewarn
password = pw-test
concatenation = true
max-messages = 10
""")
    out = (tmp_path / "fakesmsc.log").open("w")
    procs = [subprocess.Popen([KANNEL["bearerbox"], str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(1.0)
    procs.append(subprocess.Popen([KANNEL["fakesmsc"], "-H", "127.0.0.1", "-r", str(smsc), "-i", "0.1", "-m", "0"],
                                  stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT))
    procs.append(subprocess.Popen([KANNEL["smsbox"], str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", sendsms), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        for p in procs:
            p.kill()
        pytest.skip("Kannel's smsbox did not start on loopback")
    yield f"http://127.0.0.1:{sendsms}", tmp_path / "fakesmsc.log"
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    out.close()


def _fakesmsc_texts(log: Path) -> list[tuple[str, str]]:
    """``(recipient, text)`` of each message the fake SMSC received, concatenated parts joined
    (UDH ``05 00 03 ref total seq``); our non-ASCII warnings travel as UCS-2."""
    whole: list[tuple[str, str]] = []
    parts: dict[tuple[str, int], dict[int, bytes]] = {}
    totals: dict[tuple[str, int], int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "Got message" not in line:
            continue
        fields = line.split("<", 1)[1].rsplit(">", 1)[0].split(" ")
        to, kind = fields[1], fields[2]

        def raw(value: str) -> bytes:
            return unquote_to_bytes(value.replace("+", "%20"))

        if kind == "udh":
            udh, data = raw(fields[3]), raw(fields[5])
            key = (to, udh[3])
            parts.setdefault(key, {})[udh[5]] = data
            totals[key] = udh[4]
            if len(parts[key]) == totals[key]:
                joined = b"".join(parts[key][i] for i in sorted(parts[key]))
                whole.append((to, joined.decode("utf-16-be")))
        else:
            data = raw(fields[3])
            whole.append((to, data.decode("utf-16-be") if kind == "ucs-2" else data.decode("latin-1")))
    return whole


def test_kannel_fake_smsc_receives_each_warning_once(store: Store, tmp_path: Path, kannel) -> None:  # type: ignore[no-untyped-def]
    url, log = kannel
    n = seed_warnings(store, 5)
    sms = KannelSMS(url, "forewarn", "pw-test")
    report = deliver(store, {"sms": sms}, policy=fast_policy(tmp_path))
    assert report.delivered == n
    with store.engine.connect() as conn:
        warnings = repo.list_warnings(conn)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_fakesmsc_texts(log)) < n:
        time.sleep(0.2)
    received = _fakesmsc_texts(log)
    assert len(received) == n
    for w in warnings:
        matches = [text for to, text in received if w.verification_code in text]
        assert len(matches) == 1 and matches[0] == w.body  # Thai text intact through UCS-2
    bad = KannelSMS(url, "forewarn", "wrong-password")
    with pytest.raises(DeliveryError) as err:
        bad.send(OutboxMessage("m", "k", "sms", "+66811234567", None, "x", {}, None, None, 0, 3))
    assert err.value.permanent


def test_outbox_claim_expired_leases_only(store: Store) -> None:
    seed_warnings(store, 2)
    with store.begin() as conn:
        first = outbox.claim(conn, "w1", limit=10, lease_seconds=60)
        assert len(first) == 2
        assert outbox.claim(conn, "w2", limit=10, lease_seconds=60) == []
        later = outbox.claim(conn, "w3", limit=10, lease_seconds=60, now=datetime.now(UTC) + timedelta(seconds=61))
    assert len(later) == 2
    with store.engine.connect() as conn:
        assert conn.execute(select(func.max(ft.fw_outbox.c.attempts))).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(t.warnings_)).scalar_one() == 2
