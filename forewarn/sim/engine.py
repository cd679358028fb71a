"""Run a scenario: build the world, plan the fraud, stream everyday life hour by hour, and write
the event files (time-ordered, chunked) plus the ground truth. Output is written to a hidden
staging folder and moved into place at the end, so a failed run never leaves half a scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forewarn.sim.config import ScenarioConfig
from forewarn.sim.fraud import FraudActivity, FraudType, simulate_fraud
from forewarn.sim.geography import ALL_COUNTRIES, COUNTRIES, LANGUAGES
from forewarn.sim.ids import event_keys, hex_ids
from forewarn.sim.legit import (
    Counters,
    calls_for_hour,
    messages_for_hour,
    payments_for_hour,
)
from forewarn.sim.output import (
    AMOUNT,
    CALL_COLUMNS,
    CALL_SCHEMA,
    MESSAGE_COLUMNS,
    MESSAGE_SCHEMA,
    PAYMENT_COLUMNS,
    PAYMENT_SCHEMA,
    REPORT_SCHEMA,
    SIGNAL_SCHEMA,
    SUBSCRIBER_SCHEMA,
    TS,
    ChunkWriter,
    Tables,
    TimeOrderedBuffer,
    cents_to_decimal,
    write_table,
)
from forewarn.sim.world import FRAUD_SIM, US_PER_DAY, US_PER_HOUR, World, build_world, stream

SCHEMA_VERSION = 1
EVENT_FILES = {"subscriber": "subscribers.parquet", "call": "calls.parquet", "message": "messages.parquet",
               "payment": "payments.parquet", "signal": "signals.parquet", "report": "reports.parquet"}
TRUTH_FILES = ("operations", "fraud_numbers", "victims", "mule_accounts", "scam_messages", "malicious_reports",
               "wangiri_callbacks", "indicators", "hard_negatives")
STREAM_SIGNAL, STREAM_REPORT, STREAM_SUBSCRIBER = 41, 51, 61

Progress = Callable[[str, int, int], None]


class SimulationError(RuntimeError):
    """The scenario could not be written (for example the output folder is not writable)."""


@dataclass
class ScenarioFiles:
    """Where a scenario was written, with row counts and the time it took."""

    out_dir: Path
    events: dict[str, Path]
    truth_dir: Path
    manifest: Path
    counts: dict[str, int]
    seconds: float
    truth_counts: dict[str, int] = field(default_factory=dict)

    @property
    def calls_per_second(self) -> float:
        return self.counts.get("call", 0) / self.seconds if self.seconds else 0.0


def _us_ts(values: list[int | None]) -> pa.Array:
    return pa.array(values, type=pa.int64()).cast(TS)


def simulate(config: ScenarioConfig, out_dir: str | os.PathLike[str], progress: Progress | None = None) -> ScenarioFiles:
    """Write the scenario ``config`` describes to ``out_dir`` (created; existing scenario files replaced)."""
    began = time.perf_counter()
    out = Path(out_dir)
    report = progress or (lambda stage, done, total: None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".partial-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        (staging / "truth").mkdir(parents=True)
    except OSError as exc:
        raise SimulationError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        counts, truth_counts = _run(config, staging, report)
        for name in EVENT_FILES.values():
            os.replace(staging / name, out / name)
        (out / "truth").mkdir(exist_ok=True)
        for path in (staging / "truth").iterdir():
            os.replace(path, out / "truth" / path.name)
    except OSError as exc:
        raise SimulationError(f"cannot write the scenario to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScenarioFiles(out_dir=out, events={k: out / v for k, v in EVENT_FILES.items()}, truth_dir=out / "truth",
                         manifest=out / "truth" / "manifest.json", counts=counts, seconds=time.perf_counter() - began,
                         truth_counts=truth_counts)


def _run(cfg: ScenarioConfig, staging: Path, report: Progress) -> tuple[dict[str, int], dict[str, int]]:
    hours = cfg.days * 24
    report("world", 0, hours)
    world = build_world(cfg)
    counters = Counters(cfg.seed)
    fraud = simulate_fraud(world, counters)
    tables = Tables(world.parties, np.asarray(world.party_country, dtype=np.int16), world.imeis, world.cells,
                    world.accounts, np.asarray(world.account_country, dtype=np.int16), world.texts.texts,
                    ALL_COUNTRIES, tuple(COUNTRIES[c].currency for c in ALL_COUNTRIES), LANGUAGES)
    rng = stream(cfg.seed, "everyday")
    call_buf = TimeOrderedBuffer(CALL_COLUMNS)
    msg_buf = TimeOrderedBuffer(MESSAGE_COLUMNS)
    pay_buf = TimeOrderedBuffer(PAYMENT_COLUMNS)
    call_buf.add(fraud.calls)
    msg_buf.add(fraud.messages)
    pay_buf.add(fraud.payments)
    writers = {"call": ChunkWriter(staging / EVENT_FILES["call"], CALL_SCHEMA, tables.calls),
               "message": ChunkWriter(staging / EVENT_FILES["message"], MESSAGE_SCHEMA, tables.messages),
               "payment": ChunkWriter(staging / EVENT_FILES["payment"], PAYMENT_SCHEMA, tables.payments)}
    payee_signals: list[dict[str, Any]] = []
    added = 0
    try:
        for h in range(hours):
            hour_start = world.start_us + h * US_PER_HOUR
            for part in calls_for_hour(world, rng, counters, hour_start):
                call_buf.add(part)
                added += len(part["start"])
            for part in messages_for_hour(world, rng, counters, hour_start):
                msg_buf.add(part)
            pays = payments_for_hour(world, rng, counters, hour_start)
            pay_buf.add(pays)
            payee_signals.extend(_new_payee_signals(world, rng, tables, pays))
            last = h == hours - 1
            if added >= cfg.chunk_rows or last:
                before = world.end_us if last else hour_start + US_PER_HOUR
                writers["call"].write(call_buf.release(before))
                writers["message"].write(msg_buf.release(before))
                writers["payment"].write(pay_buf.release(before))
                added = 0
            report("events", h + 1, hours)
    finally:
        for writer in writers.values():
            writer.close()
    counts = {kind: writer.rows for kind, writer in writers.items()}
    report("truth", hours, hours)
    signals = fraud.signals + payee_signals + _noise_signals(world)
    counts["signal"], _ = _write_signals(world, counters, signals, staging / EVENT_FILES["signal"])
    counts["report"], report_keys = _write_reports(world, counters, fraud.reports, staging / EVENT_FILES["report"])
    counts["subscriber"] = _write_subscribers(world, counters, fraud, staging / EVENT_FILES["subscriber"])
    truth_counts = _write_truth(world, fraud, report_keys, staging / "truth")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "generator": "forewarn.sim",
        "config": json.loads(cfg.model_dump_json()),
        "window": {"start": cfg.start_at.isoformat(), "end": cfg.end_at.isoformat()},
        "files": EVENT_FILES,
        "counts": counts,
        "truth_counts": truth_counts,
        "operations_by_type": {t.value: sum(1 for op in fraud.ops if op.type is t) for t in FraudType},
        "note": "Synthetic data; message templates were written for the simulator, not collected.",
    }
    (staging / "truth" / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                                     encoding="utf-8")
    return counts, truth_counts


def _new_payee_signals(world: World, rng: np.random.Generator, tables: Tables,
                       pays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Banks tell the node when a customer pays someone new (legitimate ones included)."""
    rows = np.flatnonzero((pays["new"] == 1) & (pays["phone"] >= 0))
    out = []
    for r in rows.tolist():
        phone = int(pays["phone"][r])
        out.append({"source": f"bank-{ALL_COUNTRIES[world.party_country[phone]].lower()}", "provider": "bank",
                    "signal_type": "new_payee", "subscriber": world.parties[phone], "indicator_type": "bank_account",
                    "indicator_value": world.accounts[int(pays["payee"][r])],
                    "at": max(world.start_us, int(pays["start"][r]) - int(rng.uniform(20, 120) * 1e6)),
                    "detail": json.dumps({"channel": "mobile_app"})})
    return out


def _noise_signals(world: World) -> list[dict[str, Any]]:
    """Signals about innocent people: lost-phone SIM swaps, visits to new but harmless sites, and
    remote-support apps installed from the app store (a help desk, a relative fixing a parent's phone):
    the same tools scammers have victims install, so the app alone proves nothing."""
    rng = stream(world.cfg.seed, "noise-signals")
    span = world.end_us - world.start_us
    out = []
    for signal_type, rate in (("sim_swap", 0.0002), ("url_visit", 0.0005), ("remote_access_app_installed", 0.0002)):
        n = int(rng.poisson(world.n_home * rate * world.cfg.days))
        for who in rng.integers(0, world.n_home, n).tolist():
            country = ALL_COUNTRIES[world.party_country[who]]
            at = world.start_us + int(rng.uniform(0, span))
            if signal_type == "sim_swap":
                out.append({"source": f"telco-{country.lower()}", "provider": "telco", "signal_type": "sim_swap",
                            "subscriber": world.parties[who], "indicator_type": None, "indicator_value": None,
                            "at": at, "detail": json.dumps({"channel": "retail_store", "kyc_checked": True,
                                                            "reason": "lost_phone"}, sort_keys=True)})
            elif signal_type == "remote_access_app_installed":
                app = str(rng.choice(["com.anydesk.anydeskandroid", "com.teamviewer.quicksupport.market",
                                      "com.rustdesk.rustdesk"]))
                out.append({"source": f"isp-{country.lower()}", "provider": "internet",
                            "signal_type": "remote_access_app_installed", "subscriber": world.parties[who],
                            "indicator_type": "app_package", "indicator_value": app, "at": at,
                            "detail": json.dumps({"permission": "accessibility", "sideloaded": False}, sort_keys=True)})
            else:
                word = str(rng.choice(["bakery", "tuition", "homestay", "florist", "repair", "noodle", "yoga"]))
                domain = f"{word}-{int(rng.integers(100, 999))}.{str(rng.choice(['com', 'net', 'shop']))}"
                out.append({"source": f"isp-{country.lower()}", "provider": "internet", "signal_type": "url_visit",
                            "subscriber": world.parties[who], "indicator_type": "url",
                            "indicator_value": f"https://{domain}/", "at": at,
                            "detail": json.dumps({"domain": domain, "category": "newly_registered",
                                                  "referrer": "search"}, sort_keys=True)})
    return out


def _keys_in_order(seed: int, stream_id: int, times: list[int]) -> tuple[np.ndarray, np.ndarray]:
    keys = event_keys(seed, stream_id, 0, len(times))
    order = np.lexsort((keys, np.array(times, dtype=np.int64))) if times else np.empty(0, np.int64)
    return keys, order


def _write_signals(world: World, counters: Counters, rows: list[dict[str, Any]], path: Path) -> tuple[int, np.ndarray]:
    rows = [r for r in rows if r["at"] < world.end_us]  # what happens after the window has not happened yet
    keys, order = _keys_in_order(world.cfg.seed, STREAM_SIGNAL, [r["at"] for r in rows])
    rows = [rows[i] for i in order.tolist()]
    table = pa.Table.from_arrays([
        hex_ids("sig", keys[order]), pa.array([r["source"] for r in rows], pa.string()), pa.array(["signal"] * len(rows)),
        pa.array([r["provider"] for r in rows], pa.string()), pa.array([r["signal_type"] for r in rows], pa.string()),
        pa.array([r["subscriber"] for r in rows], pa.string()), pa.array([r["indicator_type"] for r in rows], pa.string()),
        pa.array([r["indicator_value"] for r in rows], pa.string()), _us_ts([r["at"] for r in rows]),
        pa.array([r["detail"] for r in rows], pa.string()),
    ], schema=SIGNAL_SCHEMA)
    write_table(path, table)
    return len(rows), keys


def _write_reports(world: World, counters: Counters, rows: list[dict[str, Any]], path: Path) -> tuple[int, np.ndarray]:
    keep = [i for i, r in enumerate(rows) if world.start_us <= r["at"] < world.end_us]
    keys_all = event_keys(world.cfg.seed, STREAM_REPORT, 0, len(rows))
    keep.sort(key=lambda i: (rows[i]["at"], int(keys_all[i])))
    sel = [rows[i] for i in keep]
    table = pa.Table.from_arrays([
        hex_ids("rep", keys_all[keep] if keep else np.empty(0, np.uint64)),
        pa.array([r["source"] for r in sel], pa.string()), pa.array(["report"] * len(sel)),
        pa.array([r["reporter"] for r in sel], pa.string()), pa.array([r["indicator_type"] for r in sel], pa.string()),
        pa.array([r["indicator_value"] for r in sel], pa.string()), pa.array([r["verdict"] for r in sel], pa.string()),
        pa.array([r["scam_type"] for r in sel], pa.string()),
        _optional_decimal([r["loss_cents"] for r in sel]), pa.array([r["currency"] for r in sel], pa.string()),
        _us_ts([r["at"] for r in sel]), pa.array([r["lang"] for r in sel], pa.string()),
    ], schema=REPORT_SCHEMA)
    write_table(path, table)
    kept_keys = np.full(len(rows), 0, dtype=np.uint64)
    kept_keys[keep] = keys_all[keep]
    return len(sel), np.where(np.isin(np.arange(len(rows)), keep), kept_keys, 0)


def _optional_decimal(cents: list[int | None]) -> pa.Array:
    values = np.array([c if c is not None else 0 for c in cents], dtype=np.int64)
    mask = pa.array([c is None for c in cents], type=pa.bool_())
    return pa.compute.if_else(mask, pa.scalar(None, AMOUNT), cents_to_decimal(values)) if len(cents) else \
        pa.array([], AMOUNT)


def _write_subscribers(world: World, counters: Counters, fraud: FraudActivity, path: Path) -> int:
    n = world.n_home
    sims = [(party, act, op) for op in fraud.ops for party, act in op.activated_us.items()]
    rng = stream(world.cfg.seed, "fraud-sims")
    kinds = np.asarray(world.party_kind)
    assert all(kinds[p] == FRAUD_SIM for p, _, _ in sims)
    parties = np.concatenate([np.arange(n), np.array([p for p, _, _ in sims], dtype=np.int64)])
    activated = np.concatenate([world.sub_activated_us, np.array([a for _, a, _ in sims], dtype=np.int64)])
    region_names = np.array(world.region_names, dtype=object)
    regions = np.concatenate([region_names[world.sub_region],
                              np.array([op.home_region for _, _, op in sims], dtype=object)])
    langs = np.concatenate([np.array(LANGUAGES, dtype=object)[world.sub_lang],
                            np.array([COUNTRIES[op.target].languages[0][0] for _, _, op in sims], dtype=object)])
    kyc = np.concatenate([world.sub_kyc, rng.random(len(sims)) < 0.4])  # bulk SIMs: borrowed or no ID
    countries = np.asarray(world.party_country)[parties]
    order = np.lexsort((parties, activated))
    keys = event_keys(world.cfg.seed, STREAM_SUBSCRIBER, 0, len(parties))
    table = pa.Table.from_arrays([
        hex_ids("sub", keys[order]), pa.array([f"telco-{ALL_COUNTRIES[c].lower()}" for c in countries[order]]),
        pa.array(["subscriber"] * len(parties)), pa.array(world.parties[: len(world.parties)], pa.string()).take(
            pa.array(parties[order])),
        pa.array(activated[order]).cast(TS), pa.array([ALL_COUNTRIES[c] for c in countries[order]], pa.string()),
        pa.array(regions[order].tolist(), pa.string()), pa.array(langs[order].tolist(), pa.string()),
        pa.array(kyc[order]), pa.nulls(len(parties), TS),
    ], schema=SUBSCRIBER_SCHEMA)
    write_table(path, table)
    return len(parties)


def _ids(prefix: str, keys: list[int]) -> list[str]:
    return hex_ids(prefix, np.array(keys, dtype=np.uint64)).to_pylist() if keys else []


def _iso(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


def _write_truth(world: World, fraud: FraudActivity, report_keys: np.ndarray, truth: Path) -> dict[str, int]:
    parties = world.parties
    ops = fraud.ops
    calls = fraud.calls
    # when each fraud number first did something (a call it made or a message it sent)
    first: dict[int, int] = {}
    op_numbers = {int(p): op for op in ops for p in op.numbers.tolist()}
    for caller, start in zip(calls["caller"].tolist(), calls["start"].tolist(), strict=True):
        if caller in op_numbers and (caller not in first or start < first[caller]):
            first[caller] = start
    n_calls: dict[int, int] = {}
    for caller in calls["caller"].tolist():
        if caller in op_numbers:
            n_calls[caller] = n_calls.get(caller, 0) + 1
    tables: dict[str, pa.Table] = {}
    tables["operations"] = pa.Table.from_pylist([{
        "op_id": op.op_id, "type": op.type.value, "origin_country": op.origin, "target_country": op.target,
        "scam_type": op.scam_type, "start_at": _iso(op.start_us), "home_region": op.home_region,
        "numbers": [parties[p] for p in op.numbers.tolist()], "sender_ids": [parties[p] for p in op.sender_ids.tolist()],
        "imeis": [world.imeis[i] for i in op.imeis.tolist()], "cells": [world.cells[c] for c in op.cells.tolist()],
        "mule_accounts": [world.accounts[a] for a in op.mules.tolist() + op.layer2.tolist()],
        "urls": op.urls, "domains": op.domains, "app_package": op.app_package,
    } for op in ops], schema=pa.schema([
        ("op_id", pa.string()), ("type", pa.string()), ("origin_country", pa.string()), ("target_country", pa.string()),
        ("scam_type", pa.string()), ("start_at", TS), ("home_region", pa.string()), ("numbers", pa.list_(pa.string())),
        ("sender_ids", pa.list_(pa.string())), ("imeis", pa.list_(pa.string())), ("cells", pa.list_(pa.string())),
        ("mule_accounts", pa.list_(pa.string())), ("urls", pa.list_(pa.string())), ("domains", pa.list_(pa.string())),
        ("app_package", pa.string())]))
    role = {FraudType.WANGIRI: "foreign_number", FraudType.SPOOFED_CALLER_ID: "spoofed_caller_id"}
    tables["fraud_numbers"] = pa.Table.from_pylist([{
        "number": parties[p], "op_id": op.op_id, "type": op.type.value, "role": role.get(op.type, "local_sim"),
        "country": ALL_COUNTRIES[world.party_country[p]], "first_active_at": _iso(first.get(p)),
        "activated_at": _iso(op.activated_us.get(p)), "calls_made": n_calls.get(p, 0),
    } for op in ops for p in op.numbers.tolist()], schema=pa.schema([
        ("number", pa.string()), ("op_id", pa.string()), ("type", pa.string()), ("role", pa.string()),
        ("country", pa.string()), ("first_active_at", TS), ("activated_at", TS), ("calls_made", pa.int64())]))
    victim_prefix = {"long_call": "call", "link_visit": "msg"}
    tables["victims"] = pa.Table.from_pylist([{
        "number": v["number"], "op_id": v["op_id"], "op_type": v["op_type"], "scam_type": v["scam_type"],
        "first_contact_at": _iso(v["first_contact_us"]), "decisive_kind": v["decisive_kind"],
        "decisive_event_id": _ids(victim_prefix[v["decisive_kind"]], [v["decisive_key"]])[0],
        "decisive_started_at": _iso(v["decisive_start_us"]), "decisive_at": _iso(v["decisive_at_us"]),
        "first_payment_at": _iso(v["first_payment_us"]),
        "first_payment_event_id": next(iter(_ids("pay", v.get("payment_keys", [])[:1])), None),
        "payment_event_ids": _ids("pay", v.get("payment_keys", [])), "payments": v["payments"],
        "amount": Decimal(v["amount_cents"]).scaleb(-2), "currency": v["currency"], "mule_account": v["mule_account"],
        "fraud_number": v["fraud_number"], "reported": v["reported"],
    } for v in fraud.victims], schema=pa.schema([
        ("number", pa.string()), ("op_id", pa.string()), ("op_type", pa.string()), ("scam_type", pa.string()),
        ("first_contact_at", TS), ("decisive_kind", pa.string()), ("decisive_event_id", pa.string()),
        ("decisive_started_at", TS), ("decisive_at", TS), ("first_payment_at", TS),
        ("first_payment_event_id", pa.string()), ("payment_event_ids", pa.list_(pa.string())),
        ("payments", pa.int64()), ("amount", AMOUNT), ("currency", pa.string()), ("mule_account", pa.string()),
        ("fraud_number", pa.string()), ("reported", pa.bool_())]))
    tables["mule_accounts"] = pa.Table.from_pylist([{
        "account": m["account"], "op_id": m["op_id"], "layer": m["layer"], "holder_number": m["holder_number"],
        "first_credit_at": _iso(m["first_credit_us"])} for m in fraud.mule_accounts], schema=pa.schema([
            ("account", pa.string()), ("op_id", pa.string()), ("layer", pa.int64()), ("holder_number", pa.string()),
            ("first_credit_at", TS)]))
    scam = [m for m in fraud.scam_messages if m["sent_us"] < world.end_us]
    tables["scam_messages"] = pa.Table.from_pylist([{
        "event_id": eid, "op_id": m["op_id"], "sender": m["sender"], "recipient": m["recipient"], "lure": m["lure"],
        "url": m["url"], "lang": m["lang"], "sent_at": _iso(m["sent_us"])}
        for m, eid in zip(scam, _ids("msg", [m["msg_key"] for m in scam]), strict=True)], schema=pa.schema([
            ("event_id", pa.string()), ("op_id", pa.string()), ("sender", pa.string()), ("recipient", pa.string()),
            ("lure", pa.string()), ("url", pa.string()), ("lang", pa.string()), ("sent_at", TS)]))
    mal = fraud.malicious_reports
    tables["malicious_reports"] = pa.Table.from_pylist([{
        "event_id": eid, "reporter": m["reporter"], "target_number": m["target_number"],
        "reported_at": _iso(m["reported_us"])}
        for m, eid in zip(mal, _ids("rep", [int(report_keys[m["report_index"]]) for m in mal]), strict=True)],
        schema=pa.schema([("event_id", pa.string()), ("reporter", pa.string()), ("target_number", pa.string()),
                          ("reported_at", TS)]))
    cbs = [c for c in fraud.callbacks if c["at_us"] < world.end_us]
    tables["wangiri_callbacks"] = pa.Table.from_pylist([{
        "event_id": eid, "number": c["number"], "wangiri_number": c["wangiri_number"], "op_id": c["op_id"],
        "called_back_at": _iso(c["at_us"]), "duration_s": c["duration_s"]}
        for c, eid in zip(cbs, _ids("call", [c["call_key"] for c in cbs]), strict=True)], schema=pa.schema([
            ("event_id", pa.string()), ("number", pa.string()), ("wangiri_number", pa.string()), ("op_id", pa.string()),
            ("called_back_at", TS), ("duration_s", pa.float64())]))
    indicators: list[dict[str, Any]] = []
    for op in ops:
        for kind, values in (("phone", [parties[p] for p in op.numbers.tolist()]),
                             ("sender_id", [parties[p] for p in op.sender_ids.tolist()]),
                             ("imei", [world.imeis[i] for i in op.imeis.tolist()]), ("url", op.urls),
                             ("domain", op.domains),
                             ("bank_account", [world.accounts[a] for a in op.mules.tolist() + op.layer2.tolist()]),
                             ("app_package", [op.app_package] if op.app_package else [])):
            indicators.extend({"type": kind, "value": v, "op_id": op.op_id} for v in values)
    tables["indicators"] = pa.Table.from_pylist(indicators, schema=pa.schema([
        ("type", pa.string()), ("value", pa.string()), ("op_id", pa.string())]))
    hard: list[dict[str, Any]] = []
    for profile, who in (("business_caller", np.flatnonzero(world.sub_business)),
                         ("traveller", np.flatnonzero(world.sub_visiting >= 0)),
                         ("new_subscriber", np.flatnonzero(world.sub_activated_us > world.start_us - 15 * US_PER_DAY))):
        hard.extend({"number": parties[p], "profile": profile} for p in who.tolist())
    hard.extend({"number": num, "profile": "maliciously_reported"} for num in sorted({m["target_number"] for m in mal}))
    tables["hard_negatives"] = pa.Table.from_pylist(hard, schema=pa.schema([("number", pa.string()),
                                                                            ("profile", pa.string())]))
    for name, table in tables.items():
        pq.write_table(table, truth / f"{name}.parquet", compression="zstd", compression_level=1)
    return {name: table.num_rows for name, table in tables.items()}
