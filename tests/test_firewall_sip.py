"""End to end on loopback: sipp places calls through Kamailio running the shipped configuration,
which asks a real Forewarn API process for each INVITE. Blocked calls get 603 Decline, marked calls
reach the callee with the label as the caller's display name, allowed calls arrive unchanged, and a
home-country caller ID over the international trunk (127.0.0.2) is blocked.

Needs the Debian packages kamailio, kamailio-utils-modules, kamailio-json-modules and sip-tester;
the test installs them when missing (as root, with apt-get) and skips with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forewarn.api.auth import create_key
from forewarn.config import load_settings
from forewarn.firewall.sip import KamailioSettings, render_kamailio_config
from forewarn.model.indicators import Indicator
from forewarn.store import open_store
from forewarn.store import repository as repo

pytestmark = pytest.mark.slow
PACKAGES = ["kamailio", "kamailio-utils-modules", "kamailio-json-modules", "sip-tester"]
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
BLOCKED, MARKED, CLEAN = "+8613800138000", "+8613900139000", "+8613100131000"
CALLEE = "+6581234567"  # a Singapore number: labels in English

UAC_OK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="forewarn uac expects 200">
  <send retrans="500"><![CDATA[
INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Original Name" <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field1]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Original Name" <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field1]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Original Name" <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field1]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

UAC_DECLINED = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="forewarn uac expects 603">
  <send retrans="500"><![CDATA[
INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Original Name" <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field1]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="100" optional="true"/>
  <recv response="603"/>
  <send><![CDATA[
ACK sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Original Name" <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field1]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
</scenario>
"""


def _ensure_packages() -> str | None:
    """None when everything is there (installing what is missing), else why not."""
    def missing() -> list[str]:
        out = []
        if not shutil.which("kamailio"):
            out.append("kamailio")
        if not (MODULES / "http_client.so").exists():
            out.append("kamailio-utils-modules")
        if not (MODULES / "json.so").exists():
            out.append("kamailio-json-modules")
        if not shutil.which("sipp"):
            out.append("sip-tester")
        return out

    need = missing()
    if not need:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"missing Debian packages {need} and cannot install them (not root or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=240, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-q", *need], env=env, capture_output=True, text=True,
                              timeout=480, check=False)
    except subprocess.TimeoutExpired:
        return f"installing {need} timed out"
    still = missing()
    if still:
        return f"apt-get could not install {still}: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
    return None


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def sip_packages() -> None:
    reason = _ensure_packages()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def sip_stack(sip_packages: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp_path = tmp_path_factory.mktemp("sip")
    settings = load_settings(tmp_path / "node", country="CN")
    store = open_store(settings)
    with store.begin() as conn:
        _, telco_key = create_key(conn, "telco", "kamailio")
        repo.upsert_indicator(conn, Indicator(type="phone", value=BLOCKED, confidence=95, source="behaviour.test"))
        repo.upsert_indicator(conn, Indicator(type="phone", value=MARKED, confidence=60, source="behaviour.test"))
    store.close()
    api_port = _free_port()
    env = {**os.environ, "FOREWARN_DATA_DIR": str(settings.data_dir), "FOREWARN_COUNTRY": "CN"}
    env.pop("FOREWARN_DATABASE_URL", None)
    env.pop("FOREWARN_REDIS_URL", None)
    procs: list[subprocess.Popen[bytes]] = []
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "forewarn.api.app:create_app", "--factory",
                            "--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"],
                           env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "api.log", "wb"))  # noqa: SIM115
    procs.append(api)
    sip_port, uas_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_DGRAM)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_kamailio_config(KamailioSettings(
        api_url=f"http://127.0.0.1:{api_port}", api_key=telco_key, listen=f"127.0.0.1:{sip_port}",
        upstream=f"127.0.0.1:{uas_port}", international_trunks=("127.0.0.2",), children=2)))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or api.poll() is not None:
                pytest.fail(f"API did not start: {(tmp_path / 'api.log').read_text()[-2000:]}")
            time.sleep(0.2)
        # warm the worker: the firewall state is built on first use, which may exceed the proxy's 1 s budget
        warm = httpx.get(f"http://127.0.0.1:{api_port}/v1/firewall/status", headers={"X-API-Key": telco_key},
                         timeout=30)
        assert warm.status_code == 200, warm.text
        (tmp_path / "run").mkdir()
        kam = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(tmp_path / "run"),
                                "-P", str(tmp_path / "run" / "kamailio.pid")],
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "kamailio.log", "wb"))  # noqa: SIM115
        procs.append(kam)
        uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin",
                                "-trace_msg", "-message_file", str(tmp_path / "uas_messages.log"),
                                "-timeout", "60s"], cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(uas)
        time.sleep(1.0)
        if kam.poll() is not None:
            pytest.fail(f"kamailio exited: {(tmp_path / 'kamailio.log').read_text()[-3000:]}")
        (tmp_path / "uac_ok.xml").write_text(UAC_OK)
        (tmp_path / "uac_603.xml").write_text(UAC_DECLINED)
        yield {"sip_port": sip_port, "dir": tmp_path, "api_port": api_port}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _call(stack: dict[str, object], caller: str, scenario: str, source_ip: str = "127.0.0.1") -> int:
    tmp = stack["dir"]
    assert isinstance(tmp, Path)
    csv = tmp / f"call_{caller[1:]}_{source_ip}.csv"
    csv.write_text(f"SEQUENTIAL\n{caller};{CALLEE};\n")
    done = subprocess.run(["sipp", f"127.0.0.1:{stack['sip_port']}", "-sf", str(tmp / scenario), "-inf", str(csv),
                           "-m", "1", "-i", source_ip, "-p", str(_free_port(socket.SOCK_DGRAM)), "-nostdin",
                           "-timeout", "15s", "-timeout_error", "-trace_err",
                           "-error_file", str(tmp / f"err_{caller[1:]}.log")],
                          cwd=tmp, capture_output=True, timeout=30, check=False)
    return done.returncode


def _invite_from_headers(stack: dict[str, object]) -> list[str]:
    tmp = stack["dir"]
    assert isinstance(tmp, Path)
    log = tmp / "uas_messages.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    froms = []
    for chunk in text.split("message received")[1:]:  # what the callee received, one message each
        lines = [line for line in chunk.splitlines()[1:] if line.strip()]
        if lines and lines[0].startswith("INVITE "):
            froms += [line for line in lines if line.startswith("From:")]
    return froms


def test_kamailio_blocks_marks_and_allows(sip_stack: dict[str, object]) -> None:
    assert _call(sip_stack, BLOCKED, "uac_603.xml") == 0, "a listed caller must get 603 Decline"
    assert _call(sip_stack, MARKED, "uac_ok.xml") == 0, "a marked call must still connect"
    assert _call(sip_stack, CLEAN, "uac_ok.xml") == 0, "a clean call must connect"
    time.sleep(0.5)
    froms = _invite_from_headers(sip_stack)
    marked = [h for h in froms if MARKED in h]
    clean = [h for h in froms if CLEAN in h]
    assert marked and all("Suspected fraud" in h for h in marked), froms
    assert clean and all("Original Name" in h for h in clean), froms
    assert not [h for h in froms if BLOCKED in h], "a blocked call must never reach the callee"


def test_kamailio_blocks_home_caller_id_on_international_trunk(sip_stack: dict[str, object]) -> None:
    # the same clean home number, but arriving from the international trunk's address
    assert _call(sip_stack, CLEAN, "uac_603.xml", source_ip="127.0.0.2") == 0
    assert _call(sip_stack, CLEAN, "uac_ok.xml", source_ip="127.0.0.1") == 0
