"""Everyday life, one hour at a time: calls along the contact graph with a diurnal rhythm,
lognormal talk times and returned calls; SMS and chat among contacts with replies; OTP and
notification SMS from business senders; payments to regular payees. All vectorised.
"""

from __future__ import annotations

import numpy as np

from forewarn.sim.geography import COUNTRIES, COUNTRY_INDEX, DIURNAL_PEOPLE, LANGUAGE_INDEX
from forewarn.sim.ids import event_keys
from forewarn.sim.output import Columns
from forewarn.sim.world import FOREIGN_LEGIT, US_PER_HOUR, World

DIURNAL = np.array(DIURNAL_PEOPLE) / np.sum(DIURNAL_PEOPLE)
CALL_TYPE_P = np.array([0.88, 0.07, 0.05])

# event-id streams (high bits of the id counter); every stream has its own counter
STREAM_LEGIT_CALL, STREAM_RETURN_CALL, STREAM_BUSINESS_CALL = 1, 2, 3
STREAM_LEGIT_MSG, STREAM_REPLY_MSG, STREAM_NOTIFY_MSG = 11, 12, 13
STREAM_LEGIT_PAY = 21


class Counters:
    """Next counter per id stream."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.next: dict[int, int] = {}

    def keys(self, stream_id: int, count: int) -> np.ndarray:
        start = self.next.get(stream_id, 0)
        self.next[stream_id] = start + count
        return event_keys(self.seed, stream_id, start, count)


def hourly_callers(world: World, rng: np.random.Generator, hour_start_us: int, per_day: float) -> np.ndarray:
    """Home subscribers starting an action this hour, by local time and personal activity."""
    utc_hour = (hour_start_us // US_PER_HOUR) % 24
    out = []
    for country, (a, b) in world.country_blocks.items():
        local = (utc_hour + COUNTRIES[country].utc_offset_h) % 24
        k = rng.poisson((b - a) * per_day * DIURNAL[local])
        cum = world.sub_weight_cum[country]
        out.append(a + np.searchsorted(cum, rng.random(k) * cum[-1], side="right"))
    return np.concatenate(out).astype(np.int64) if out else np.empty(0, np.int64)


def pick_contacts(world: World, rng: np.random.Generator, who: np.ndarray) -> np.ndarray:
    """A contact of each of ``who``: the first few of a contact list are called far more often."""
    rank = (world.degree[who] * rng.random(len(who)) ** 2.2).astype(np.int64)
    return world.contacts[who, rank].astype(np.int64)


def call_attributes(world: World, rng: np.random.Generator, caller: np.ndarray, callee: np.ndarray,
                    start: np.ndarray, answer_p: float | np.ndarray, median_talk_s: float = 75.0) -> Columns:
    """Complete legitimate calls: answer, ring and talk time, type, ingress, device and cell.

    One row per call, written by the network that carries it into the scenario: the caller's home
    network (``domestic``) for on-net originations; the callee's network (``international``) when
    the call arrives from another country; ``roaming`` when the caller's SIM is abroad.
    """
    n = len(caller)
    party_kind = world.kind_array()
    party_country = world.country_array()
    answered = rng.random(n) < answer_p
    talk = np.clip(np.rint(rng.lognormal(np.log(median_talk_s), 1.1, n)), 1, 10_800)
    rang_out = rng.random(n) < 0.5
    ring = np.where(answered, rng.gamma(2.0, 3.0, n) + 1.0,
                    np.where(rang_out, rng.uniform(20, 45, n), rng.uniform(4, 15, n)))
    ctype = rng.choice(3, n, p=CALL_TYPE_P).astype(np.int8)
    home = caller < world.n_home
    hc = np.minimum(caller, world.n_home - 1)
    visiting = np.where(home, world.sub_visiting[hc], -1)
    roaming = visiting >= 0
    foreign_caller = party_kind[caller] == FOREIGN_LEGIT
    cross = home & ~roaming & (callee < world.n_home) & (party_country[caller] != party_country[callee])
    international = foreign_caller | cross
    ingress = np.where(roaming, 2, np.where(international, 1, 0)).astype(np.int8)
    local_cell = np.where(rng.random(n) < 0.7, world.sub_cell[hc],
                          world.random_cells(rng, world.sub_region[hc]))
    cell = np.where(international, -1, local_cell)
    if roaming.any():
        cell[roaming] = _visited_cells(world, rng, visiting[roaming])
    rec = np.where(international, party_country[callee], party_country[caller]).astype(np.int8)
    return {"caller": caller, "callee": callee, "start": start,
            "dur": np.where(answered, talk, 0.0), "ring": np.rint(ring),
            "ctype": ctype, "ingress": ingress,
            "imei": np.where(home & ~international, world.sub_imei[hc], -1),
            "cell": cell, "rec": rec}


def _visited_cells(world: World, rng: np.random.Generator, visited: np.ndarray) -> np.ndarray:
    from forewarn.sim.geography import ALL_COUNTRIES

    regions = np.empty(len(visited), dtype=np.int32)
    for k, country in enumerate(ALL_COUNTRIES):
        sel = visited == k
        if sel.any():
            options = [world.region_of_name[r] for r, _ in COUNTRIES[country].regions if r in world.region_of_name]
            if not options:  # a home country not simulated: attach to the first simulated region
                options = [0]
            regions[sel] = np.array(options)[rng.integers(0, len(options), sel.sum())]
    return world.random_cells(rng, regions)


def calls_for_hour(world: World, rng: np.random.Generator, counters: Counters, hour_start_us: int) -> list[Columns]:
    cfg = world.cfg
    caller = hourly_callers(world, rng, hour_start_us, cfg.calls_per_day)
    callee = pick_contacts(world, rng, caller)
    start = hour_start_us + (rng.random(len(caller)) * US_PER_HOUR).astype(np.int64)
    base = call_attributes(world, rng, caller, callee, start, 0.78)
    base["eid"] = counters.keys(STREAM_LEGIT_CALL, len(caller))
    parts = [base, returned_calls(world, rng, counters, base)]
    # people who call strangers for a living: couriers, agents, clinics (hard negatives for detectors)
    workers = np.flatnonzero(world.sub_business)
    if len(workers):
        utc_hour = (hour_start_us // US_PER_HOUR) % 24
        local = (utc_hour + np.array([COUNTRIES_BY_INDEX[c].utc_offset_h for c in world.sub_country[workers]])) % 24
        rate = np.where((local >= 9) & (local < 18), 90.0 / 9, 0.0)
        k = rng.poisson(rate)
        who = np.repeat(workers, k)
        if len(who):
            a_b = np.array([world.country_blocks[COUNTRIES_BY_INDEX[c].code] for c in world.sub_country[who]])
            strangers = a_b[:, 0] + (rng.random(len(who)) * (a_b[:, 1] - a_b[:, 0])).astype(np.int64)
            start_b = hour_start_us + (rng.random(len(who)) * US_PER_HOUR).astype(np.int64)
            biz = call_attributes(world, rng, who, strangers, start_b, 0.72, median_talk_s=50.0)
            biz["eid"] = counters.keys(STREAM_BUSINESS_CALL, len(who))
            parts.append(biz)
    return parts


def returned_calls(world: World, rng: np.random.Generator, counters: Counters, base: Columns) -> Columns:
    """Reciprocity: missed calls are mostly returned within minutes, some answered ones later."""
    missed = base["dur"] == 0
    back = np.where(missed, rng.random(len(missed)) < 0.55, rng.random(len(missed)) < 0.12)
    who = np.flatnonzero(back & (world.kind_array()[base["callee"]] <= FOREIGN_LEGIT))
    delay_s = np.where(missed[who], rng.lognormal(np.log(360), 1.0, len(who)), rng.lognormal(np.log(7200), 1.0, len(who)))
    start = base["start"][who] + ((base["dur"][who] + base["ring"][who] + delay_s) * 1e6).astype(np.int64)
    out = call_attributes(world, rng, base["callee"][who], base["caller"][who], start, 0.85)
    out["eid"] = counters.keys(STREAM_RETURN_CALL, len(who))
    return out


def messages_for_hour(world: World, rng: np.random.Generator, counters: Counters, hour_start_us: int) -> list[Columns]:
    cfg = world.cfg
    party_country = world.country_array()
    sender = hourly_callers(world, rng, hour_start_us, cfg.messages_per_day)
    recipient = pick_contacts(world, rng, sender)
    keep = recipient < world.n_home  # chats with relatives abroad go over apps we do not see
    sender, recipient = sender[keep], recipient[keep]
    start = hour_start_us + (rng.random(len(sender)) * US_PER_HOUR).astype(np.int64)
    parts = [_personal(world, rng, sender, recipient, start)]
    parts[0]["eid"] = counters.keys(STREAM_LEGIT_MSG, len(sender))
    reply = rng.random(len(sender)) < 0.4
    r_start = start[reply] + (rng.lognormal(np.log(90), 1.2, reply.sum()) * 1e6).astype(np.int64)
    replies = _personal(world, rng, recipient[reply], sender[reply], r_start)
    replies["eid"] = counters.keys(STREAM_REPLY_MSG, int(reply.sum()))
    parts.append(replies)
    # one-time passwords and notifications from banks, couriers and wallets
    who = hourly_callers(world, rng, hour_start_us, 0.25 * (cfg.messages_per_day > 0))
    if len(who):
        text = np.empty(len(who), dtype=np.int32)
        sender_id = np.empty(len(who), dtype=np.int64)
        for country in world.country_blocks:
            ci = COUNTRY_INDEX[country]
            for lang, li in LANGUAGE_INDEX.items():
                sel = (world.sub_country[who] == ci) & (world.sub_lang[who] == li)
                if sel.any():
                    bank = world.texts.notify[(country, lang)]
                    text[sel] = bank[rng.integers(0, len(bank), sel.sum())]
            sel = world.sub_country[who] == ci
            senders = world.business_senders[country]
            sender_id[sel] = senders[rng.integers(0, len(senders), sel.sum())]
        parts.append({"eid": counters.keys(STREAM_NOTIFY_MSG, len(who)), "sender": sender_id, "recipient": who,
                      "text": text, "start": hour_start_us + (rng.random(len(who)) * US_PER_HOUR).astype(np.int64),
                      "channel": np.zeros(len(who), np.int8), "ingress": np.zeros(len(who), np.int8),
                      "lang": world.sub_lang[who], "rec": party_country[who]})
    return parts


def _personal(world: World, rng: np.random.Generator, sender: np.ndarray, recipient: np.ndarray,
              start: np.ndarray) -> Columns:
    party_country = world.country_array()
    lang = world.sub_lang[sender]
    text = np.empty(len(sender), dtype=np.int32)
    for name, li in LANGUAGE_INDEX.items():
        sel = lang == li
        if sel.any():
            bank = world.texts.ham[name]
            text[sel] = bank[rng.integers(0, len(bank), sel.sum())]
    cross = party_country[sender] != party_country[recipient]
    return {"sender": sender, "recipient": recipient, "text": text, "start": start,
            "channel": (rng.random(len(sender)) < 0.25).astype(np.int8),
            "ingress": cross.astype(np.int8), "lang": lang,
            "rec": np.where(cross, party_country[recipient], party_country[sender]).astype(np.int8)}


def payments_for_hour(world: World, rng: np.random.Generator, counters: Counters, hour_start_us: int) -> Columns:
    cfg = world.cfg
    payer = hourly_callers(world, rng, hour_start_us, cfg.payments_per_day)
    n = len(payer)
    slot = rng.integers(0, 4, n)
    payee = world.payees[payer, slot].astype(np.int64)
    new = rng.random(n) < 0.04  # a new shop or person now and then
    for country, ci in ((c, COUNTRY_INDEX[c]) for c in world.country_blocks):
        sel = new & (world.sub_country[payer] == ci)
        merchants = world.merchants[country]
        payee[sel] = merchants[rng.integers(0, len(merchants), sel.sum())]
    median = np.array([COUNTRIES_BY_INDEX[c].median_payment for c in world.sub_country[payer]], dtype=np.float64)
    family = slot >= 2
    amount = rng.lognormal(np.log(np.maximum(median, 1)), 0.9, n) * np.where(family, 3.0, 1.0)
    vnd = world.sub_country[payer] == COUNTRY_INDEX["VN"]
    cents = np.where(vnd, np.rint(amount / 1000) * 1000 * 100, np.rint(amount * 100)).astype(np.int64)
    cents = np.maximum(cents, 100)
    return {"eid": counters.keys(STREAM_LEGIT_PAY, n), "payer": world.sub_account[payer],
            "phone": np.where(rng.random(n) < 0.9, payer, -1), "payee": payee, "cents": cents,
            "cur": world.sub_country[payer],
            "start": hour_start_us + (rng.random(n) * US_PER_HOUR).astype(np.int64),
            "channel": np.where(rng.random(n) < 0.6, 0, 1).astype(np.int8), "new": new.astype(np.int8)}


COUNTRIES_BY_INDEX = {COUNTRY_INDEX[c]: spec for c, spec in COUNTRIES.items()}
