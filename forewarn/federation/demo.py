"""Three (or more) sovereign nodes on loopback, to show and measure federation end to end.

:func:`run_nodes` gives each country its own data directory, store, node key and policy (the
example policy of that country, with the partners' loopback URLs, pinned keys and credentials filled
in), serves each node's API with uvicorn in a thread, and runs each node's sync scheduler. It then
injects a fraud operation's number detected in the first node and measures how long until it is in
each other node's core ``indicators`` table — the table the firewall reads — where the policies
allow, checks it never arrives where they do not, and audits every partner object received against
the sender's policy. It also shows PSI (a node that may not receive the raw number can still ask
whether it is on the list), a sighting flowing back to the source, and a revocation propagating.
"""

from __future__ import annotations

import base64
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select, update

from forewarn.api.auth import create_key
from forewarn.config import Settings, load_settings
from forewarn.federation import client as fed_client
from forewarn.federation import stix
from forewarn.federation.node import (
    FederationNode,
    keygen,
    load_credentials,
    load_node,
    policy_path,
    save_credentials,
)
from forewarn.federation.policy import (
    PARTNER_SOURCE_PREFIX,
    NodePolicy,
    Pseudonymisation,
    dump_policy,
    example_policy_path,
    load_policy,
)
from forewarn.federation.tables import federation_inbox
from forewarn.model.indicators import Indicator, IndicatorType, utcnow
from forewarn.store import Store, open_store
from forewarn.store import repository as repo
from forewarn.store import schema as t

# A fraud operation's number (a valid Thai mobile number: the operation calls victims in Thailand).
DEMO_NUMBER = "+66812345678"


@dataclass
class RunningNode:
    country: str
    settings: Settings
    store: Store
    node: FederationNode
    port: int
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    scheduler: fed_client.Scheduler | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_nodes(countries: list[str], base_dir: Path, *, interval: float = 0.5) -> list[RunningNode]:
    """Create the nodes' data directories, keys, policies and credentials (nothing running yet)."""
    names = [c.upper() for c in countries]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError("give at least two distinct countries")
    nodes: list[RunningNode] = []
    keys: dict[str, str] = {}
    for name in names:
        settings = load_settings(base_dir / name.lower(), database_url=f"sqlite:///{base_dir / name.lower()}/forewarn.sqlite3",
                                 country=name)
        store = open_store(settings)
        keys[name] = keygen(settings, name, overwrite=True).public_key
        policy = load_policy(example_policy_path(name))
        policy_path(settings).write_text(dump_policy(policy))
        nodes.append(RunningNode(name, settings, store, load_node(settings, store), _free_port()))
    by_name = {n.country: n for n in nodes}
    pair_keys: dict[frozenset[str], str] = {}
    for n in nodes:
        policy = n.node.policy
        creds = load_credentials(n.settings)
        for partner, rules in policy.partners.items():
            if partner not in by_name:
                continue
            other = by_name[partner]
            rules.url = f"http://127.0.0.1:{other.port}/taxii2/"
            rules.public_key = keys[partner]
            rules.pull_interval_seconds = interval
            with other.store.begin() as conn:
                _, secret = create_key(conn, "partner", n.country)  # the key `other` gives to n
            hash_key = pair_keys.setdefault(frozenset((n.country, partner)),
                                            base64.b64encode(secrets.token_bytes(32)).decode())
            creds.set(partner, api_key=secret, hash_key=hash_key)
        save_credentials(n.settings, creds)
        policy_path(n.settings).write_text(dump_policy(policy))
    for n in nodes:
        n.node = load_node(n.settings, n.store)
    return nodes


def start(nodes: list[RunningNode], *, interval: float = 0.5) -> None:
    from forewarn.api.app import create_app

    for n in nodes:
        config = uvicorn.Config(create_app(n.settings, store=n.store), host="127.0.0.1", port=n.port,
                                log_level="error", lifespan="off")
        n.server = uvicorn.Server(config)
        n.thread = threading.Thread(target=n.server.run, name=f"node-{n.country}", daemon=True)
        n.thread.start()
    deadline = time.monotonic() + 20
    while not all(n.server and n.server.started for n in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the demo nodes did not start within 20 s")
        time.sleep(0.05)
    for n in nodes:
        n.scheduler = fed_client.Scheduler(n.node, interval=interval).start()


def stop(nodes: list[RunningNode]) -> None:
    for n in nodes:
        if n.scheduler:
            n.scheduler.stop()
    for n in nodes:
        if n.server:
            n.server.should_exit = True
    for n in nodes:
        if n.thread:
            n.thread.join(timeout=10)
        n.store.close()


def _in_firewall_table(store: Store, value: str, source: str) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(t.indicators.c.id).where(
            t.indicators.c.value == value, t.indicators.c.source == source,
            t.indicators.c.revoked.is_(False))).first() is not None


def _revoked_in(store: Store, value: str, source: str) -> bool:
    with store.engine.connect() as conn:
        row = conn.execute(select(t.indicators.c.revoked).where(
            t.indicators.c.value == value, t.indicators.c.source == source)).first()
    return bool(row and row.revoked)


def _wait(check: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(step)
    return None


def expected_arrival(sender: NodePolicy, receiver: NodePolicy, ind: Indicator) -> bool:
    """Whether both policies let ``ind`` from ``sender`` reach ``receiver``'s firewall table unaided."""
    if receiver.node not in sender.partners or sender.node not in receiver.partners:
        return False
    rules = sender.partner(receiver.node).outbound
    if rules.decide(type_=ind.type.value, tlp=ind.tlp.value, confidence=ind.confidence, source=ind.source):
        return False
    if rules.how(ind.type) is not Pseudonymisation.RAW:
        return False
    inbound = receiver.partner(sender.node).inbound
    return ind.type in inbound.accept_types and receiver.auto_approves(sender.node)


def policy_violations(nodes: list[RunningNode]) -> list[str]:
    """Every partner object any node holds, checked against the sender's policy for that receiver."""
    by_name = {n.country: n for n in nodes}
    problems: list[str] = []
    for receiver in nodes:
        with receiver.store.engine.connect() as conn:
            rows = conn.execute(select(federation_inbox.c.partner, federation_inbox.c.type,
                                       federation_inbox.c.value, federation_inbox.c.keyed_hash)).fetchall()
        for sender_name, typ, value, hashed in rows:
            sender = by_name.get(sender_name)
            if sender is None or typ is None:
                continue
            rules = sender.node.policy.partner(receiver.country).outbound
            hash_key = sender.node.credentials.hash_key(receiver.country)
            with sender.store.engine.connect() as conn:
                own = conn.execute(select(t.indicators).where(t.indicators.c.type == typ)).fetchall()
            if value is not None:
                candidates = [r for r in own if r.value == value]
                ok_form = rules.how(typ) is Pseudonymisation.RAW
            else:
                candidates = [r for r in own if hash_key and stix.keyed_hash(hash_key, typ, r.value) == hashed]
                ok_form = rules.how(typ) is Pseudonymisation.KEYED_HASH
            allowed = ok_form and any(
                rules.decide(type_=r.type, tlp=r.tlp, confidence=r.confidence, source=r.source) is None
                for r in candidates)
            if not allowed:
                problems.append(f"{sender_name}→{receiver.country}: {typ} {value or hashed} is not allowed")
    return problems


def run_nodes(countries: list[str] | None = None, *, base_dir: Path | None = None, interval: float = 0.5,
              timeout: float = 30.0, number: str = DEMO_NUMBER, with_psi: bool = True,
              with_revocation: bool = True) -> dict[str, Any]:
    """Run the nodes, propagate one fraud number, and report what happened (see the module docstring).

    Returns ``{"propagation_seconds", "policy_violations", "arrivals", "expected", ...}``;
    ``propagation_seconds`` is the slowest arrival among the nodes that should receive it.
    """
    countries = countries or ["cn", "th", "my"]
    tmp = None
    if base_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="forewarn-federation-")
        base_dir = Path(tmp.name)
    nodes = setup_nodes(countries, base_dir, interval=interval)
    source = nodes[0]
    try:
        start(nodes, interval=interval)
        ind = Indicator(type=IndicatorType.PHONE, value=number, confidence=90, source="detector:behaviour",
                        tlp="green", scam_type="investment",
                        description="fraud operation number detected by the demo")
        injected = time.perf_counter()
        with source.store.begin() as conn:
            repo.upsert_indicator(conn, ind)
        partner_source = f"{PARTNER_SOURCE_PREFIX}{source.country}"
        expected = {n.country: expected_arrival(source.node.policy, n.node.policy, ind) for n in nodes[1:]}
        arrivals: dict[str, float | None] = {}
        deadline = injected + timeout
        while time.perf_counter() < deadline and any(expected[c] and c not in arrivals for c in expected):
            for n in nodes[1:]:
                if n.country not in arrivals and _in_firewall_table(n.store, ind.value, partner_source):
                    arrivals[n.country] = time.perf_counter() - injected
            time.sleep(0.02)
        # give forbidden destinations several more sync rounds to prove nothing arrives
        time.sleep(max(3 * interval, 1.0))
        for n in nodes[1:]:
            if n.country not in arrivals:
                arrivals[n.country] = (time.perf_counter() - injected
                                       if _in_firewall_table(n.store, ind.value, partner_source) else None)
        wrong = [c for c in expected if (arrivals[c] is not None) != expected[c]]
        violations = policy_violations(nodes)
        result: dict[str, Any] = {
            "nodes": [n.country for n in nodes], "source": source.country, "number": ind.value,
            "expected": expected,
            "arrivals": {c: (round(s, 3) if s is not None else None) for c, s in arrivals.items()},
            "propagation_seconds": round(max((s for c, s in arrivals.items() if expected[c] and s is not None),
                                             default=float("nan")), 3),
            "policy_violations": len(violations) + len(wrong),
            "violations": violations + [f"{c}: expected {'arrival' if expected[c] else 'no arrival'}" for c in wrong],
        }
        if with_psi:
            result["psi"] = _psi_demo(nodes, source, ind)
        receivers = [n for n in nodes[1:] if arrivals.get(n.country) is not None]
        if receivers:
            result["sighting_seconds"] = _sighting_demo(source, receivers[0], ind, timeout)
        if with_revocation and receivers:
            result["revocation_seconds"] = _revocation_demo(source, receivers, ind, partner_source, timeout)
        return result
    finally:
        stop(nodes)
        if tmp is not None:
            tmp.cleanup()


def _psi_demo(nodes: list[RunningNode], source: RunningNode, ind: Indicator) -> dict[str, Any]:
    """Nodes that did not get the raw number ask the source by PSI whether it is on its list."""
    out: dict[str, Any] = {}
    for n in nodes[1:]:
        rules = source.node.policy.partners.get(n.country)
        if rules is None or not rules.outbound.psi or ind.type not in rules.outbound.psi_types:
            continue
        decoys = [f"+6681{i:07d}" for i in range(1000, 1100)]
        started = time.perf_counter()
        try:
            found = fed_client.psi_query(n.node, source.country, ind.type.value, decoys + [ind.value])
        except Exception as exc:  # reported in the summary, not raised
            out[n.country] = {"error": str(exc)}
            continue
        out[n.country] = {"asked": len(decoys) + 1, "matched": sorted(found),
                          "seconds": round(time.perf_counter() - started, 3)}
    return out


def _sighting_demo(source: RunningNode, receiver: RunningNode, ind: Indicator, timeout: float) -> float | None:
    """The receiver's own detectors flag the number too: a sighting flows back to the source."""
    with source.store.engine.connect() as conn:
        before = conn.execute(select(t.indicators.c.sightings).where(
            t.indicators.c.value == ind.value, t.indicators.c.source == ind.source)).scalar() or 0
    with receiver.store.begin() as conn:
        repo.upsert_indicator(conn, ind.model_copy(update={"source": "detector:screening", "last_seen": utcnow()}))

    def seen() -> bool:
        with source.store.engine.connect() as conn:
            now = conn.execute(select(t.indicators.c.sightings).where(
                t.indicators.c.value == ind.value, t.indicators.c.source == ind.source)).scalar() or 0
        return now > before

    took = _wait(seen, timeout)
    return round(took, 3) if took is not None else None


def _revocation_demo(source: RunningNode, receivers: list[RunningNode], ind: Indicator, partner_source: str,
                     timeout: float) -> float | None:
    with source.store.begin() as conn:
        conn.execute(update(t.indicators).where(t.indicators.c.value == ind.value,
                                                t.indicators.c.source == ind.source).values(revoked=True))
    took = _wait(lambda: all(_revoked_in(n.store, ind.value, partner_source) for n in receivers), timeout)
    return round(took, 3) if took is not None else None
