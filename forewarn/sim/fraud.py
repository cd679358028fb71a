"""Fraud operations run from across a border, their victims and the traces they leave.

Operation types (``FraudType``): mass dialling from fresh local SIMs on border cells, SIM boxes
terminating international traffic as local calls, SIMs of the victims' country roaming next door,
wangiri one-ring calls from foreign numbers, home-country caller IDs spoofed over international
trunks, and SMS phishing in the victims' language. Victims take a long call or visit a link,
then pay mule accounts minutes to hours later — or, for about a third (slow scams: investment,
tasks), days later after more calls from the scammer; mules pass the money on within minutes. Some
victims report; some people maliciously report innocent numbers; the post sees bulk SIM parcels.
Per-call work is vectorised; per-victim work (hundreds to thousands) is a plain loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from forewarn.sim.geography import (
    ADJACENT_ORIGINS,
    ANY_ORIGINS,
    BANKS,
    BUSINESS_SENDERS,
    COUNTRIES,
    COUNTRY_INDEX,
    DIURNAL_COMPOUND,
    DIURNAL_FLAT,
    DIURNAL_WANGIRI,
    LANGUAGES,
    WALLETS,
)
from forewarn.sim.ids import GATEWAY_TACS, accounts, imeis
from forewarn.sim.legit import Counters, call_attributes
from forewarn.sim.output import CALL_COLUMNS, MESSAGE_COLUMNS, PAYMENT_COLUMNS, Columns, concat
from forewarn.sim.world import (
    FOREIGN_FRAUD,
    FRAUD_SIM,
    SCAM_SENDER_ID,
    SPOOFED_ID,
    US_PER_DAY,
    US_PER_HOUR,
    World,
    stream,
)

US_PER_MIN = 60_000_000
US_PER_S = 1_000_000
STREAM_FRAUD_CALL, STREAM_CALLBACK, STREAM_FOLLOW_UP, STREAM_FRAUD_MSG, STREAM_FRAUD_PAY = 4, 5, 6, 14, 22


class FraudType(StrEnum):
    MASS_DIALLING = "mass_dialling"
    SIM_BOX = "sim_box"
    ROAMING = "roaming"
    WANGIRI = "wangiri"
    SPOOFED_CALLER_ID = "spoofed_caller_id"
    SMS_PHISHING = "sms_phishing"


TYPE_SHARE = {FraudType.MASS_DIALLING: .3, FraudType.SIM_BOX: .2, FraudType.ROAMING: .14,
              FraudType.SMS_PHISHING: .14, FraudType.SPOOFED_CALLER_ID: .14, FraudType.WANGIRI: .08}
TYPE_SIZE = {FraudType.MASS_DIALLING: (3, 8, 14), FraudType.SIM_BOX: (4, 16, 32), FraudType.ROAMING: (2, 6, 12),
             FraudType.SMS_PHISHING: (2, 5, 10), FraudType.SPOOFED_CALLER_ID: (4, 18, 40),
             FraudType.WANGIRI: (1, 4, 8)}  # (min, typical, max) numbers per operation
LURES_BY_TYPE = {
    FraudType.MASS_DIALLING: ("police_impersonation", "bank_account_suspended", "parcel_customs", "investment"),
    FraudType.SIM_BOX: ("police_impersonation", "parcel_customs", "loan"),
    FraudType.ROAMING: ("police_impersonation", "bank_account_suspended", "investment"),
    FraudType.SPOOFED_CALLER_ID: ("police_impersonation", "bank_account_suspended"),
    FraudType.SMS_PHISHING: ("parcel_customs", "bank_account_suspended", "job_task", "loan", "prize", "investment"),
    FraudType.WANGIRI: ("wangiri",),
}
DOMAIN_STEMS = {
    "parcel_customs": ("parcel-fee", "customs-clear", "track-redeliver", "post-duty"),
    "bank_account_suspended": ("secure-verify", "account-unlock", "ebank-auth", "kyc-update"),
    "police_impersonation": ("case-check", "gov-notice", "court-summons", "police-verify"),
    "job_task": ("task-earn", "like-job", "review-pay", "parttime-hub"),
    "investment": ("coin-mentor", "vip-stock", "wealth-signal", "crypto-yield"),
    "loan": ("fast-loan", "credit-now", "easy-cash", "loan-approve"),
    "prize": ("lucky-draw", "prize-claim", "anniv-gift", "reward-center"),
}
TLDS = ("top", "xyz", "cc", "icu", "shop", "vip", "club", "live", "info", "buzz")
APK_LURES = {"parcel_customs", "bank_account_suspended", "police_impersonation"}
# Share of victims, by lure, whose scam runs for more than a day from first contact to the first
# payment; the rest pay within minutes to hours. Across the lures the simulator produces this comes
# to about a third, as reported (GASA 2025: ~64 % of scams are over within a day of first contact):
# investment ("pig butchering") and task scams groom their victims for days; a "customs fee" or an
# "account suspended, verify now" is paid the same day.
SLOW_SCAM_SHARE = {"investment": 0.85, "job_task": 0.65, "loan": 0.35, "prize": 0.25, "police_impersonation": 0.4,
                   "parcel_customs": 0.15, "bank_account_suspended": 0.15}
FOLLOW_UP_DAILY_P = 0.6  # on a given day of a slow scam the scammer calls; the rest happens in chat apps
ANSWER_P = {FraudType.MASS_DIALLING: 0.22, FraudType.SIM_BOX: 0.35, FraudType.ROAMING: 0.3,
            FraudType.SPOOFED_CALLER_ID: 0.45, FraudType.SMS_PHISHING: 0.2, FraudType.WANGIRI: 0.0}


@dataclass
class Operation:
    op_id: str
    type: FraudType
    origin: str
    target: str
    scam_type: str
    start_us: int
    numbers: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sender_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    imeis: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    cells: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    mules: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    mule_holders: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    layer2: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    urls: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    app_package: str | None = None
    texts: dict[str, np.ndarray] = field(default_factory=dict)  # lang -> text indices
    activated_us: dict[int, int] = field(default_factory=dict)  # local SIM party -> activation time
    home_region: str | None = None


@dataclass
class FraudActivity:
    ops: list[Operation]
    calls: Columns
    messages: Columns
    payments: Columns
    signals: list[dict[str, Any]]
    reports: list[dict[str, Any]]
    victims: list[dict[str, Any]]
    mule_accounts: list[dict[str, Any]]
    scam_messages: list[dict[str, Any]]
    malicious_reports: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]


# ------------------------------------------------------------------------------------------------
def plan_operations(world: World) -> list[Operation]:
    cfg = world.cfg
    if cfg.fraud_rate == 0:
        return []
    rng = stream(cfg.seed, "operations")
    total = cfg.fraud_rate * world.n_home
    targets = list(cfg.countries)
    weights = np.array([b - a for a, b in world.country_blocks.values()], dtype=float)
    ops: list[Operation] = []
    for ftype, share in TYPE_SHARE.items():
        lo, typical, hi = TYPE_SIZE[ftype]
        wanted = share * total
        n_ops = max(1, int(round(wanted / typical)))
        if ftype is FraudType.SMS_PHISHING:  # scam SMS reach every home country, in its languages
            n_ops = max(n_ops, len(targets))
        size = int(np.clip(round(wanted / n_ops), lo, hi))
        for k in range(n_ops):
            target = targets[k % len(targets)] if k < len(targets) else str(rng.choice(targets, p=weights / weights.sum()))
            needs_border = ftype in (FraudType.MASS_DIALLING, FraudType.SMS_PHISHING)
            origin = str(rng.choice((ADJACENT_ORIGINS if needs_border else ANY_ORIGINS)[target]))
            lures = LURES_BY_TYPE[ftype]
            start = world.start_us + int(rng.uniform(-2.0, 0.35 * cfg.days) * US_PER_DAY)
            start = min(start, world.end_us - 12 * US_PER_HOUR)
            op = Operation(op_id=f"op-{len(ops) + 1:03d}", type=ftype, origin=origin, target=target,
                           scam_type=str(lures[k % len(lures)]), start_us=start)
            _equip(world, rng, op, max(lo, int(round(size * rng.uniform(0.75, 1.25)))))
            ops.append(op)
    return ops


def _equip(world: World, rng: np.random.Generator, op: Operation, size: int) -> None:
    """Numbers, devices, cells, domains, texts and mule accounts of one operation."""
    t = op.type
    if t in (FraudType.WANGIRI,):
        op.numbers = world.new_numbers(rng, op.origin, size, FOREIGN_FRAUD)
    elif t is FraudType.SPOOFED_CALLER_ID:
        op.numbers = world.new_numbers(rng, op.target, size, SPOOFED_ID)  # presented IDs, unassigned
    else:
        op.numbers = world.new_numbers(rng, op.target, size, FRAUD_SIM)  # local SIMs bought in bulk
    if t in (FraudType.MASS_DIALLING, FraudType.SMS_PHISHING):
        region = str(rng.choice(COUNTRIES[op.target].border_regions[op.origin]))
        op.home_region = region
        op.cells = world.random_cells(rng, np.full(int(rng.integers(2, 4)), world.region_of_name[region]))
        op.imeis = world.add_imeis(imeis(rng, max(1, size // 4)))
    elif t is FraudType.SIM_BOX:
        regions = world.country_regions(op.target)
        region_id = int(regions[int(rng.integers(0, len(regions)))])
        op.home_region = world.region_names[region_id]
        op.cells = world.random_cells(rng, np.array([region_id]))  # static: one cell
        op.imeis = world.add_imeis(imeis(rng, max(2, size // 6), GATEWAY_TACS))
    elif t is FraudType.ROAMING:
        origin_regions = world.country_regions(op.origin)
        op.home_region = COUNTRIES[op.target].regions[0][0]
        op.cells = world.random_cells(rng, origin_regions[rng.integers(0, len(origin_regions), 3)])
        op.imeis = world.add_imeis(imeis(rng, max(1, size // 3)))
    if t is FraudType.SMS_PHISHING:
        brands = BUSINESS_SENDERS[op.target]
        lookalikes = {f"{b[:7]}{s}"[:11] for b in brands for s in ("-SEC", "-VRF", "INFO")}
        chosen = sorted(lookalikes)
        picks = [chosen[int(i)] for i in rng.choice(len(chosen), 2, replace=False)]
        op.sender_ids = world.add_parties(picks, None, SCAM_SENDER_ID)
    if op.numbers.size and t not in (FraudType.WANGIRI, FraudType.SPOOFED_CALLER_ID):
        for party in op.numbers.tolist():
            op.activated_us[party] = 0  # filled when its active window is known
    if t is FraudType.WANGIRI:
        return
    stems = DOMAIN_STEMS[op.scam_type]
    for _ in range(2):
        letters = "".join(chr(97 + int(x)) for x in rng.integers(0, 26, 3))
        op.domains.append(f"{op.target.lower()}-{stems[int(rng.integers(len(stems)))]}-{letters}.{TLDS[int(rng.integers(len(TLDS)))]}")
    path = {"parcel_customs": "pay", "bank_account_suspended": "verify", "police_impersonation": "case",
            "job_task": "join", "investment": "vip", "loan": "apply", "prize": "claim"}[op.scam_type]
    op.urls = [f"https://{d}/{path}" for d in op.domains]
    if op.scam_type in APK_LURES:
        op.app_package = f"com.{stems[0].replace('-', '')}.{op.target.lower()}{int(rng.integers(10, 99))}"
    brand = BUSINESS_SENDERS[op.target][0]
    for lang in sorted({lang for lang, _ in COUNTRIES[op.target].languages}):
        op.texts[lang] = world.texts.build_scam(rng, lang, op.scam_type, op.urls, brand)
    banks = BANKS[op.target] + WALLETS[op.target]
    n_mules = int(rng.integers(3, 9))
    op.mules = world.add_accounts(accounts(rng, banks, n_mules), op.target)
    a, b = world.country_blocks[op.target]
    op.mule_holders = (a + rng.integers(0, b - a, n_mules)).astype(np.int32)  # recruited locals
    op.layer2 = world.add_accounts(accounts(rng, BANKS[op.target], int(rng.integers(1, 3)), 13), op.target)


# ------------------------------------------------------------------------------------------------
def _sample_times(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, per_day: float,
                  profile: tuple[float, ...], utc_offset_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Event times for each (a_i, b_i) window at ``per_day`` following an hour-of-day profile."""
    accept = np.array(profile) / max(profile)
    days = np.maximum(b - a, 0) / US_PER_DAY
    counts = rng.poisson(per_day * days / accept.mean())
    owner = np.repeat(np.arange(len(a)), counts)
    t = a[owner] + (rng.random(len(owner)) * (b - a)[owner]).astype(np.int64)
    local = ((t // US_PER_HOUR) + utc_offset_h) % 24
    keep = rng.random(len(t)) < accept[local]
    order = np.argsort(t[keep], kind="stable")
    return owner[keep][order], t[keep][order]


def _windows(world: World, rng: np.random.Generator, op: Operation, rotate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Active window of each number; rotating SIMs are used one after another per phone."""
    a0 = max(op.start_us, world.start_us)
    n = len(op.numbers)
    if not rotate:
        return np.full(n, a0, np.int64), np.full(n, world.end_us, np.int64)
    phones = max(1, len(op.imeis))
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    for p in range(phones):
        mine = np.arange(p, n, phones)
        span = (world.end_us - a0) / len(mine)
        a[mine] = a0 + (np.arange(len(mine)) * span).astype(np.int64)
        b[mine] = a[mine] + int(span)
    return a, b


def _scam_call_rows(world: World, rng: np.random.Generator, op: Operation, owner: np.ndarray, start: np.ndarray,
                    callee: np.ndarray) -> Columns:
    n = len(start)
    answered = rng.random(n) < ANSWER_P[op.type]
    talk = np.clip(np.rint(rng.lognormal(np.log(22), 0.9, n)), 1, 900)
    rang_out = rng.random(n) < 0.6
    ring = np.where(answered, rng.gamma(2.0, 2.5, n) + 1, np.where(rang_out, rng.uniform(20, 45, n), rng.uniform(4, 12, n)))
    target_ci = COUNTRY_INDEX[op.target]
    cols: Columns = {"caller": op.numbers[owner], "callee": callee, "start": start,
                     "dur": np.where(answered, talk, 0.0), "ring": np.rint(ring),
                     "ctype": np.zeros(n, np.int8), "ingress": np.zeros(n, np.int8),
                     "imei": np.full(n, -1, np.int32), "cell": np.full(n, -1, np.int32),
                     "rec": np.full(n, target_ci, np.int8)}
    t = op.type
    if t in (FraudType.MASS_DIALLING, FraudType.SMS_PHISHING):
        cols["imei"] = op.imeis[owner % len(op.imeis)]
        cols["cell"] = op.cells[rng.integers(0, len(op.cells), n)]
    elif t is FraudType.SIM_BOX:
        cols["imei"] = op.imeis[rng.integers(0, len(op.imeis), n)]  # SIMs rotate through the modules
        cols["cell"] = np.full(n, op.cells[0], np.int32)
    elif t is FraudType.ROAMING:
        cols["imei"] = op.imeis[owner % len(op.imeis)]
        cols["cell"] = op.cells[rng.integers(0, len(op.cells), n)]
        cols["ingress"][:] = 2
    elif t is FraudType.SPOOFED_CALLER_ID:
        cols["ingress"][:] = 1  # arrives over an international trunk with a home-country caller ID
    elif t is FraudType.WANGIRI:
        cols["ingress"][:] = 1
        cols["ring"] = rng.integers(1, 4, n).astype(np.float64)  # one ring, ≤ 3 s, never answered
        cols["dur"] = np.zeros(n)
    return cols


def _strangers(world: World, rng: np.random.Generator, country: str, n: int) -> np.ndarray:
    a, b = world.country_blocks[country]
    return (a + rng.integers(0, b - a, n)).astype(np.int64)


# ------------------------------------------------------------------------------------------------
def simulate_fraud(world: World, counters: Counters) -> FraudActivity:
    cfg = world.cfg
    rng = stream(cfg.seed, "fraud")
    ops = plan_operations(world)
    calls: list[Columns] = []
    messages: list[Columns] = []
    hooks: list[tuple[int, int, str, int, int]] = []  # (decisive_at, victim, kind, op index, event row)
    clicks: list[dict[str, Any]] = []
    signals: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    scam_messages: list[dict[str, Any]] = []
    callbacks: list[dict[str, Any]] = []
    call_meta: list[tuple[int, Columns]] = []

    for oi, op in enumerate(ops):
        origin_off = COUNTRIES[op.origin].utc_offset_h
        target_off = COUNTRIES[op.target].utc_offset_h
        t = op.type
        rotate = t in (FraudType.MASS_DIALLING, FraudType.SMS_PHISHING)
        a, b = _windows(world, rng, op, rotate)
        for k, party in enumerate(op.numbers.tolist()):
            if party in op.activated_us:
                lead_days = {FraudType.SIM_BOX: rng.uniform(5, 30), FraudType.ROAMING: rng.uniform(2, 10)}.get(
                    t, rng.uniform(0.5, 6))
                op.activated_us[party] = int(a[k] - lead_days * US_PER_DAY)
        rate, profile, offset = {
            FraudType.MASS_DIALLING: (340.0, DIURNAL_COMPOUND, origin_off),
            FraudType.SIM_BOX: (170.0, DIURNAL_FLAT, target_off),
            FraudType.ROAMING: (150.0, DIURNAL_COMPOUND, origin_off),
            FraudType.SPOOFED_CALLER_ID: (45.0, DIURNAL_COMPOUND, origin_off),
            FraudType.WANGIRI: (700.0, DIURNAL_WANGIRI, target_off),
            FraudType.SMS_PHISHING: (15.0, DIURNAL_COMPOUND, origin_off),  # a few "missed call, then SMS"
        }[t]
        if t is FraudType.SPOOFED_CALLER_ID:  # popular presented IDs are reused far more
            owner, start = _sample_times(rng, np.full(1, a[0]), np.full(1, world.end_us),
                                         rate * len(op.numbers), profile, offset)
            owner = np.minimum((rng.pareto(1.1, len(start)) * 2).astype(np.int64), len(op.numbers) - 1)
        else:
            owner, start = _sample_times(rng, a, b, rate, profile, offset)
        # every number of an operation is used at least once inside its window
        everyone = np.arange(len(op.numbers))
        first_use = a + (rng.random(len(everyone)) * np.maximum(b - a, 1)).astype(np.int64)
        owner = np.concatenate([owner, everyone])
        start = np.concatenate([start, first_use])
        order = np.argsort(start, kind="stable")
        owner, start = owner[order], start[order]
        callee = _strangers(world, rng, op.target, len(start))
        rows = _scam_call_rows(world, rng, op, owner, start, callee)
        rows["eid"] = counters.keys(STREAM_FRAUD_CALL, len(start))
        calls.append(rows)
        call_meta.append((oi, rows))
        callbacks_cols, cb_rows = _callbacks(world, rng, counters, op, rows)
        calls.append(callbacks_cols)
        callbacks.extend(cb_rows)
        if t is FraudType.WANGIRI:
            continue
        # hooked: a long answered call with someone who believes the story
        answered = np.flatnonzero(rows["dur"] > 0)
        hooked = answered[rng.random(len(answered)) < cfg.victim_rate]
        long_talk = np.clip(np.rint(rng.lognormal(np.log(1500), 0.6, len(hooked))), 420, 7200)
        rows["dur"][hooked] = long_talk
        for r in hooked.tolist():
            end = int(rows["start"][r] + rows["dur"][r] * US_PER_S)
            hooks.append((end, int(rows["callee"][r]), "long_call", oi, r))
        # people who hang up and report the number
        for r in answered[rng.random(len(answered)) < 0.01].tolist():
            when = int(rows["start"][r] + (rows["dur"][r] + rng.lognormal(np.log(3600), 1.0)) * US_PER_S)
            reports.append(_report(world, int(rows["callee"][r]), "phone", world.parties[int(rows["caller"][r])],
                                   op.scam_type, when, None, None))
        if t is FraudType.SMS_PHISHING:
            msg_rows, msg_truth, op_clicks = _phishing(world, rng, counters, op, oi, a, b)
            messages.append(msg_rows)
            scam_messages.extend(msg_truth)
            clicks.extend(op_clicks)

    # link visits: every click is seen by the internet partner; some clickers go on to pay
    for click in clicks:
        signals.append(_signal(world, "internet", "url_visit", click["victim"], "url", click["url"], click["at"],
                               {"domain": click["url"].split("/")[2], "referrer": "sms"}))
        if rng.random() < cfg.pay_after_click_rate:
            hooks.append((click["at"], click["victim"], "link_visit", click["op"], -1))
            click["hooked"] = True

    victims, payments, more_msgs, more_signals, more_reports, mules, follow_ups = _victims(
        world, rng, counters, ops, hooks, call_meta, clicks, scam_messages)
    calls.append(follow_ups)
    messages.append(more_msgs)
    signals.extend(more_signals)
    reports.extend(more_reports)
    signals.extend(_post_signals(world, rng, ops))
    malicious = _malicious_reports(world, rng, ops, reports)
    return FraudActivity(ops=ops, calls=concat(calls, CALL_COLUMNS), messages=concat(messages, MESSAGE_COLUMNS),
                         payments=payments, signals=signals, reports=reports, victims=victims,
                         mule_accounts=mules, scam_messages=scam_messages, malicious_reports=malicious,
                         callbacks=callbacks)


def _callbacks(world: World, rng: np.random.Generator, counters: Counters, op: Operation,
               rows: Columns) -> tuple[Columns, list[dict[str, Any]]]:
    """Curious people call missed numbers back: rarely for scam SIMs, the point of wangiri."""
    missed = np.flatnonzero(rows["dur"] == 0)
    share = 0.04 if op.type is FraudType.WANGIRI else 0.02
    who = missed[rng.random(len(missed)) < share]
    delay = rng.lognormal(np.log(900 if op.type is FraudType.WANGIRI else 600), 1.0, len(who))
    start = rows["start"][who] + (delay * US_PER_S).astype(np.int64)
    caller = rows["callee"][who]
    callee = rows["caller"][who].astype(np.int64)
    if op.type is FraudType.WANGIRI:  # a premium line answers and keeps the caller talking
        cols = call_attributes(world, rng, caller, callee, start, 0.92, median_talk_s=95.0)
    elif op.type is FraudType.SPOOFED_CALLER_ID:
        cols = call_attributes(world, rng, caller, callee, start, 0.0)
    else:
        cols = call_attributes(world, rng, caller, callee, start, 0.15, median_talk_s=12.0)
    cols["eid"] = counters.keys(STREAM_CALLBACK, len(who))
    truth = []
    if op.type is FraudType.WANGIRI:
        for i in range(len(who)):
            truth.append({"call_key": int(cols["eid"][i]), "number": world.parties[int(caller[i])],
                          "wangiri_number": world.parties[int(callee[i])], "op_id": op.op_id,
                          "at_us": int(start[i]), "duration_s": float(cols["dur"][i])})
    return cols, truth


def _phishing(world: World, rng: np.random.Generator, counters: Counters, op: Operation, oi: int,
              a: np.ndarray, b: np.ndarray) -> tuple[Columns, list[dict[str, Any]], list[dict[str, Any]]]:
    owner, start = _sample_times(rng, a, b, 420.0, DIURNAL_COMPOUND, COUNTRIES[op.origin].utc_offset_h)
    n = len(start)
    recipient = _strangers(world, rng, op.target, n)
    via_aggregator = rng.random(n) < 0.3  # sender ID spoofed through an international SMS route
    sender = np.where(via_aggregator, op.sender_ids[rng.integers(0, len(op.sender_ids), n)], op.numbers[owner])
    lang_idx = world.sub_lang[recipient]
    text = np.empty(n, np.int32)
    for lang, bank in op.texts.items():
        sel = lang_idx == LANGUAGES.index(lang)
        text[sel] = bank[rng.integers(0, len(bank), sel.sum())]
    ci = COUNTRY_INDEX[op.target]
    cols: Columns = {"eid": counters.keys(STREAM_FRAUD_MSG, n), "sender": sender, "recipient": recipient,
                     "text": text, "start": start, "channel": np.zeros(n, np.int8),
                     "ingress": via_aggregator.astype(np.int8), "lang": lang_idx, "rec": np.full(n, ci, np.int8)}
    truth = [{"msg_key": int(cols["eid"][i]), "op_id": op.op_id, "sender": world.parties[int(sender[i])],
              "recipient": world.parties[int(recipient[i])], "lure": op.scam_type,
              "url": world.texts.url_of[int(text[i])], "lang": LANGUAGES[int(lang_idx[i])], "sent_us": int(start[i])}
             for i in range(n)]
    clicked = np.flatnonzero(rng.random(n) < world.cfg.click_rate)
    clicks = []
    for i in clicked.tolist():
        at = int(start[i] + rng.lognormal(np.log(300), 1.0) * US_PER_S)
        if at < world.end_us:
            clicks.append({"victim": int(recipient[i]), "url": world.texts.url_of[int(text[i])], "at": at,
                           "op": oi, "msg_key": int(cols["eid"][i]), "sent": int(start[i])})
    reports = rng.random(n) < 0.004
    for i in np.flatnonzero(reports).tolist():
        sender_text = world.parties[int(sender[i])]
        kind = "sender_id" if not sender_text.startswith("+") else "phone"
        truth_url = world.texts.url_of[int(text[i])]
        clicks_report = {"reporter": int(recipient[i]), "indicator": (kind, sender_text) if rng.random() < 0.6
                         else ("url", truth_url), "at": int(start[i] + rng.lognormal(np.log(1800), 1.0) * US_PER_S),
                         "lure": op.scam_type}
        truth.append({"_report": clicks_report})
    return cols, truth, clicks


def _report(world: World, reporter: int, itype: str, value: str, scam_type: str | None, at: int,
            loss_cents: int | None, currency: str | None, verdict: str = "scam") -> dict[str, Any]:
    country = world.party_country[reporter]
    lang = LANGUAGES[int(world.sub_lang[reporter])] if reporter < world.n_home else None
    from forewarn.sim.geography import ALL_COUNTRIES

    return {"source": f"portal-{ALL_COUNTRIES[country].lower()}", "reporter": world.parties[reporter],
            "indicator_type": itype, "indicator_value": value, "verdict": verdict, "scam_type": scam_type,
            "loss_cents": loss_cents, "currency": currency, "at": at, "lang": lang}


def _signal(world: World, provider: str, signal_type: str, subscriber: int | None, itype: str | None,
            value: str | None, at: int, detail: dict[str, Any]) -> dict[str, Any]:
    from forewarn.sim.geography import ALL_COUNTRIES

    country = ALL_COUNTRIES[world.party_country[subscriber]] if subscriber is not None else "xx"
    prefix = {"internet": "isp", "telco": "telco", "bank": "bank", "post": "post", "police": "police"}[provider]
    return {"source": f"{prefix}-{country.lower()}", "provider": provider, "signal_type": signal_type,
            "subscriber": world.parties[subscriber] if subscriber is not None else None,
            "indicator_type": itype, "indicator_value": value, "at": at,
            "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False)}


def _victims(world: World, rng: np.random.Generator, counters: Counters, ops: list[Operation],
             hooks: list[tuple[int, int, str, int, int]], call_meta: list[tuple[int, Columns]],
             clicks: list[dict[str, Any]], scam_messages: list[dict[str, Any]]
             ) -> tuple[list[dict[str, Any]], Columns, Columns, list[dict[str, Any]], list[dict[str, Any]],
                        list[dict[str, Any]], Columns]:
    cfg = world.cfg
    follow_ups: list[Columns] = []
    rows_by_op = dict(call_meta)
    click_by_key = {(c["victim"], c["at"]): c for c in clicks}
    hooks.sort(key=lambda h: (h[0], h[1]))
    seen: set[int] = set()
    mule_set = {int(h) for op in ops for h in op.mule_holders.tolist()}
    pay: dict[str, list[int]] = {k: [] for k in ("payer", "phone", "payee", "cents", "cur", "start", "channel", "new")}
    msg: dict[str, list[int]] = {k: [] for k in ("sender", "recipient", "text", "start", "channel", "ingress",
                                                  "lang", "rec")}
    signals: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    victims: list[dict[str, Any]] = []
    mule_first: dict[int, int] = {}
    pay_truth: list[tuple[int, int]] = []  # (victim index, payment row)
    for decisive_at, victim, kind, oi, row in hooks:
        op = ops[oi]
        if victim in seen or victim in mule_set or victim >= world.n_home:
            if kind == "long_call":  # a second scam on someone already hooked: an ordinary hang-up
                rows_by_op[oi]["dur"][row] = float(np.clip(np.rint(rng.lognormal(np.log(22), 0.9)), 1, 900))
            continue
        seen.add(victim)
        lang = LANGUAGES[int(world.sub_lang[victim])]
        ci = int(world.sub_country[victim])
        spec = COUNTRIES[op.target]
        ready = decisive_at
        if kind == "long_call":
            calls = rows_by_op[oi]
            first_contact = int(calls["start"][row])
            decisive_key = int(calls["eid"][row])
            decisive_start = first_contact
            fraud_number = world.parties[int(calls["caller"][row])]
            # while talking, the "officer" or "agent" sends a link to follow
            if op.urls and op.type is not FraudType.SIM_BOX and rng.random() < 0.35:  # SIM boxes send no SMS
                sent = first_contact + int(calls["dur"][row] * US_PER_S * rng.uniform(0.2, 0.7))
                sender = int(calls["caller"][row])  # the number that is on the line
                bank = op.texts[lang] if lang in op.texts else next(iter(op.texts.values()))
                text = int(bank[int(rng.integers(len(bank)))])
                for key, value in (("sender", sender), ("recipient", victim), ("text", text), ("start", sent),
                                   ("channel", 0), ("ingress", int(op.type in (FraudType.SPOOFED_CALLER_ID,))),
                                   ("lang", LANGUAGES.index(lang)), ("rec", ci)):
                    msg[key].append(value)
                visit = sent + int(rng.uniform(40, 200) * US_PER_S)
                url = world.texts.url_of[text]
                signals.append(_signal(world, "internet", "url_visit", victim, "url", url, visit,
                                       {"domain": url.split("/")[2], "referrer": "sms"}))
                if op.app_package and rng.random() < 0.6:
                    signals.append(_signal(world, "internet", "remote_access_app_installed", victim, "app_package",
                                           op.app_package, visit + int(rng.uniform(60, 400) * US_PER_S),
                                           {"permission": "accessibility", "sideloaded": True}))
        else:
            click = click_by_key[(victim, decisive_at)]
            first_contact = click["sent"]
            decisive_key = click["msg_key"]
            decisive_start = decisive_at
            fraud_number = None
            if op.app_package and rng.random() < 0.5:
                installed = decisive_at + int(rng.uniform(90, 600) * US_PER_S)
                signals.append(_signal(world, "internet", "remote_access_app_installed", victim, "app_package",
                                       op.app_package, installed, {"permission": "accessibility", "sideloaded": True}))
                ready = installed
            if op.scam_type == "bank_account_suspended" and rng.random() < 0.3:  # OTP theft via SIM swap
                swapped = decisive_at + int(rng.uniform(300, 1800) * US_PER_S)
                signals.append(_signal(world, "telco", "sim_swap", victim, None, None, swapped,
                                       {"channel": "retail_store", "kyc_checked": False}))
                ready = max(ready, swapped)
        # the money moves: minutes to hours after the decisive moment, or days later for a slow scam
        first_pay = ready + int(np.clip(rng.lognormal(np.log(35 * 60), 0.8), 240, 10 * 3600) * US_PER_S)
        if rng.random() < SLOW_SCAM_SHARE.get(op.scam_type, 0.0):
            first_pay = max(first_pay, first_contact + int((1.0 + min(rng.exponential(1.5), 9.0)) * US_PER_DAY))
            caller = (int(rows_by_op[oi]["caller"][row]) if kind == "long_call"
                      else int(op.numbers[int(rng.integers(len(op.numbers)))]))  # the "agent" behind the link
            touch = _keep_in_touch(world, rng, op, caller, victim, decisive_at, first_pay)
            if touch is not None:
                follow_ups.append(touch)
        if first_pay >= world.end_us:
            # hooked, but the money moves after the window: a victim all the same, with no payment seen
            victims.append(_victim_row(world, op, victim, kind, first_contact, decisive_key, decisive_start,
                                       decisive_at, None, [], spec.currency, None, fraud_number))
            continue
        n_pay = int(min(rng.geometric(0.5), 6))
        total = rng.lognormal(np.log(spec.median_loss), 0.9)
        shares = np.sort(rng.dirichlet(np.ones(n_pay)))  # escalating transfers
        when = first_pay
        paid_to: set[int] = set()
        vi = len(victims)
        amounts: list[int] = []
        for p in range(n_pay):
            if when >= world.end_us:
                break
            mule = int(op.mules[int(rng.integers(len(op.mules)))])
            holder = int(op.mule_holders[list(op.mules).index(mule)])
            amount = total * shares[p]
            cents = int(round(amount / 1000) * 1000 * 100) if op.target == "VN" else int(round(amount * 100))
            cents = max(cents, 1000)
            new = mule not in paid_to
            if new:
                signals.append(_signal(world, "bank", "new_payee", victim, "bank_account", world.accounts[mule],
                                       when - int(rng.uniform(30, 150) * US_PER_S), {"channel": "mobile_app"}))
            paid_to.add(mule)
            channel = 1 if "WL" in world.accounts[mule].split(":")[0] else 0
            for key, value in (("payer", int(world.sub_account[victim])), ("phone", victim if rng.random() < 0.9 else -1),
                               ("payee", mule), ("cents", cents), ("cur", ci), ("start", when),
                               ("channel", channel), ("new", int(new))):
                pay[key].append(value)
            pay_truth.append((vi, len(pay["start"]) - 1))
            amounts.append(cents)
            mule_first.setdefault(mule, when)
            # the mule passes 80–90% on within 3–10 minutes
            onward = when + int(rng.uniform(180, 600) * US_PER_S)
            if onward < world.end_us:
                layer2 = int(op.layer2[int(rng.integers(len(op.layer2)))])
                for key, value in (("payer", mule), ("phone", holder), ("payee", layer2),
                                   ("cents", int(cents * rng.uniform(0.8, 0.9)) // 100 * 100), ("cur", ci),
                                   ("start", onward), ("channel", 0), ("new", int(layer2 not in mule_first))):
                    pay[key].append(value)
                mule_first.setdefault(layer2, onward)
            when += int(rng.lognormal(np.log(50 * 60), 0.9) * US_PER_S)
        victims.append(_victim_row(world, op, victim, kind, first_contact, decisive_key, decisive_start, decisive_at,
                                   first_pay, amounts, spec.currency,
                                   world.accounts[pay["payee"][pay_truth[-len(amounts)][1]]], fraud_number))
        if rng.random() < cfg.report_rate:
            at = when + int(rng.lognormal(np.log(8 * 3600), 0.8) * US_PER_S)
            if at < world.end_us:
                if fraud_number and rng.random() < 0.7:
                    indicator = ("phone", fraud_number)
                elif rng.random() < 0.5 and op.urls:
                    indicator = ("url", op.urls[0])
                else:
                    indicator = ("bank_account", victims[-1]["mule_account"])
                reports.append(_report(world, victim, indicator[0], indicator[1], op.scam_type, at,
                                       sum(amounts), spec.currency))
                victims[-1]["reported"] = True
    n = len(pay["start"])
    payments: Columns = {k: np.array(v, dtype=PAYMENT_COLUMNS[k]) for k, v in pay.items()}
    payments["eid"] = counters.keys(STREAM_FRAUD_PAY, n)
    for vi, row in pay_truth:
        victims[vi].setdefault("payment_keys", []).append(int(payments["eid"][row]))
    m = len(msg["start"])
    messages: Columns = {k: np.array(v, dtype=MESSAGE_COLUMNS[k]) for k, v in msg.items()}
    messages["eid"] = counters.keys(STREAM_FRAUD_MSG, m)
    for i in range(m):
        sender_op = _op_of_sender(ops, int(messages["sender"][i]))
        scam_messages.append({"msg_key": int(messages["eid"][i]), "op_id": sender_op.op_id if sender_op else None,
                              "sender": world.parties[int(messages["sender"][i])],
                              "recipient": world.parties[int(messages["recipient"][i])],
                              "lure": sender_op.scam_type if sender_op else None, "url": world.texts.url_of[int(messages["text"][i])],
                              "lang": LANGUAGES[int(messages["lang"][i])], "sent_us": int(messages["start"][i])})
    # reports queued by the phishing step
    for entry in [e for e in scam_messages if "_report" in e]:
        r = entry["_report"]
        reports.append(_report(world, r["reporter"], r["indicator"][0], r["indicator"][1], r["lure"], r["at"], None, None))
    scam_messages[:] = [e for e in scam_messages if "_report" not in e]
    mules = []
    for op in ops:
        for layer, accs in ((1, op.mules), (2, op.layer2)):
            for k, acc in enumerate(accs.tolist()):
                mules.append({"account": world.accounts[acc], "op_id": op.op_id, "layer": layer,
                              "holder_number": world.parties[int(op.mule_holders[k])] if layer == 1 else None,
                              "first_credit_us": mule_first.get(acc)})
    follow = concat(follow_ups, CALL_COLUMNS)
    follow["eid"] = counters.keys(STREAM_FOLLOW_UP, len(follow["start"]))
    return victims, payments, messages, signals, reports, mules, follow


def _keep_in_touch(world: World, rng: np.random.Generator, op: Operation, caller: int, victim: int, since: int,
                   until: int) -> Columns | None:
    """A slow scam's visible trace between the hook and the payment: calls from the scammer on some
    days (the rest of the grooming happens in chat apps the network does not see), and a call
    shortly before the money is asked for."""
    starts: list[int] = []
    day = 1
    while since + day * US_PER_DAY < until:
        if rng.random() < FOLLOW_UP_DAILY_P:
            starts.append(since + day * US_PER_DAY + int(rng.normal(0, 3) * US_PER_HOUR))
        day += 1
    if rng.random() < FOLLOW_UP_DAILY_P:  # "today is the last day to move your funds"
        starts.append(until - int(rng.uniform(10, 90) * US_PER_MIN))
    starts = sorted(t for t in starts if since < t < min(until, world.end_us))
    if not starts:
        return None
    n = len(starts)
    owner = np.full(n, int(np.flatnonzero(op.numbers == caller)[0]), np.int64)
    rows = _scam_call_rows(world, rng, op, owner, np.array(starts, np.int64), np.full(n, victim, np.int64))
    rows["dur"] = np.clip(np.rint(rng.lognormal(np.log(480), 0.7, n)), 60, 5400)  # the victim picks up and talks
    rows["ring"] = np.rint(rng.gamma(2.0, 2.5, n) + 1)
    rows["eid"] = np.zeros(n, CALL_COLUMNS["eid"])  # keys are drawn for all follow-ups at once
    return rows


def _victim_row(world: World, op: Operation, victim: int, kind: str, first_contact: int, decisive_key: int,
                decisive_start: int, decisive_at: int, first_pay: int | None, amounts: list[int], currency: str,
                mule_account: str | None, fraud_number: str | None) -> dict[str, Any]:
    return {"number": world.parties[victim], "op_id": op.op_id, "op_type": op.type.value, "scam_type": op.scam_type,
            "first_contact_us": first_contact, "decisive_kind": kind, "decisive_key": decisive_key,
            "decisive_start_us": decisive_start, "decisive_at_us": decisive_at, "first_payment_us": first_pay,
            "payments": len(amounts), "amount_cents": sum(amounts), "currency": currency,
            "mule_account": mule_account, "fraud_number": fraud_number, "reported": False}


def _op_of_sender(ops: list[Operation], party: int) -> Operation | None:
    for op in ops:
        if party in op.numbers or party in op.sender_ids:
            return op
    return None


def _post_signals(world: World, rng: np.random.Generator, ops: list[Operation]) -> list[dict[str, Any]]:
    """SIMs bought in bulk reach the operations by parcel; the post sees it, sometimes redirected."""
    out = []
    for op in ops:
        if not op.activated_us:
            continue
        first = min(op.activated_us.values())
        shipped = first - int(rng.uniform(1, 3) * US_PER_DAY)
        parcel = f"P{int(rng.integers(10**9, 10**10))}"
        contact = int(op.numbers[0])
        out.append(_signal(world, "post", "bulk_sim_parcel", contact, None, None, shipped,
                           {"sim_count": len(op.numbers) * int(rng.integers(3, 8)), "parcel_id": parcel,
                            "destination_region": op.home_region or op.target}))
        if rng.random() < 0.5:
            out.append(_signal(world, "post", "parcel_redirect", contact, None, None,
                               shipped + int(rng.uniform(6, 30) * US_PER_HOUR),
                               {"parcel_id": parcel, "new_destination": "border pickup point"}))
    # legitimate companies buy SIMs for their staff too
    workers = np.flatnonzero(world.sub_business)
    for party in workers[: max(1, world.n_home // 8000)].tolist():
        out.append(_signal(world, "post", "bulk_sim_parcel", party, None, None,
                           world.start_us + int(rng.uniform(0, world.end_us - world.start_us)),
                           {"sim_count": int(rng.integers(5, 25)), "parcel_id": f"P{int(rng.integers(10**9, 10**10))}",
                            "destination_region": world.region_names[int(world.sub_region[party])]}))
    return out


def _malicious_reports(world: World, rng: np.random.Generator, ops: list[Operation],
                       reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rivals report innocent numbers as scams to get them blocked; customers vouch for businesses."""
    excluded = {int(h) for op in ops for h in op.mule_holders.tolist()}
    excluded.update(np.flatnonzero(world.sub_business).tolist())
    n_targets = max(1, world.n_home // 5000)
    truth = []
    span = world.end_us - world.start_us
    for _ in range(n_targets):
        target = int(rng.integers(world.n_home))
        while target in excluded:
            target = int(rng.integers(world.n_home))
        excluded.add(target)
        a, b = world.country_blocks[_country_of(world, target)]
        reporters = a + rng.choice(b - a, int(rng.integers(2, 6)), replace=False)
        lure = str(rng.choice(list(DOMAIN_STEMS)))
        for reporter in reporters.tolist():
            at = world.start_us + int(rng.uniform(0, span))
            reports.append(_report(world, reporter, "phone", world.parties[target], lure, at, None, None))
            reports[-1]["malicious"] = True
            truth.append({"report_index": len(reports) - 1, "reporter": world.parties[reporter],
                          "target_number": world.parties[target], "reported_us": at})
    for worker in np.flatnonzero(world.sub_business).tolist():
        if rng.random() < 0.5:
            a, b = world.country_blocks[_country_of(world, worker)]
            reports.append(_report(world, int(a + rng.integers(b - a)), "phone", world.parties[worker], None,
                                   world.start_us + int(rng.uniform(0, span)), None, None, verdict="not_scam"))
    return truth


def _country_of(world: World, party: int) -> str:
    from forewarn.sim.geography import ALL_COUNTRIES

    return ALL_COUNTRIES[world.party_country[party]]
