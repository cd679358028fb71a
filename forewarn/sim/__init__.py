"""The scenario simulator: a realistic multi-country scenario of telecom fraud, with ground truth.

``forewarn.sim.simulate(config, out_dir) -> ScenarioFiles`` writes, under ``out_dir``, one Parquet
file per event kind whose columns are EXACTLY the fields of the models in
``forewarn.model.events`` (so ``forewarn ingest`` and ``forewarn.model.parse_event`` accept every
row), and ``load_truth(out_dir) -> GroundTruth`` reads back what really happened.
The CLI is ``forewarn simulate --out DIR --seed N --subscribers N --days N [--start DATE] [--fraud-rate F]``.

Event files (schema version 1; times are UTC ``timestamp[us, tz=UTC]``; rows are in time order)
------------------------------------------------------------------------------------------------
``subscribers.parquet`` (SubscriberRecord): event_id, source, kind, number, activated_at, country,
    home_region (ISO 3166-2, e.g. TH-27), language, kyc_verified, updated_at.
    Home subscribers of CN, TH, MY, VN plus the local SIMs fraud operations bought.
``calls.parquet`` (CallRecord): event_id, source, kind, caller, callee, start, duration_s (0 when not
    answered), ring_s, direction (always "outgoing": one row per call, caller to callee), call_type,
    ingress, caller_country, callee_country, imei, cell_id (``<region>-<nnnnn>``).
    ``ingress`` is how the call reached the network that recorded it: ``domestic`` (originated on
    that network; imei and cell present), ``international`` (arrived over an international trunk;
    no imei or cell), ``roaming`` (the caller's SIM is abroad; the cell is a foreign one).
``messages.parquet`` (Message): event_id, source, kind, sender (E.164 or an alphanumeric sender ID),
    recipient, text, sent_at, channel (sms/chat), ingress, lang (zh, th, ms, en, vi).
``payments.parquet`` (Payment): event_id, source, kind, payer_account, payer_phone, payee_account
    (``BANK:NUMBER``), amount (decimal128(18,2)), currency (CNY THB MYR VND), paid_at, channel, new_payee.
``signals.parquet`` (ProviderSignal): event_id, source, kind, provider, signal_type, subscriber,
    indicator_type, indicator_value, observed_at, detail (a JSON object as a string). Types:
    url_visit, remote_access_app_installed, new_payee, sim_swap, bulk_sim_parcel, parcel_redirect.
    Innocent people produce them too: new payees, lost-phone SIM swaps, visits to new sites and
    remote-support apps from the app store (a few per 10,000 people a day).
``reports.parquet`` (CitizenReport): event_id, source, kind, reporter, indicator_type, indicator_value,
    verdict, scam_type, loss_amount, currency, reported_at, lang.

Event ids are ``<call|msg|pay|sig|rep|sub>-<16 hex>``: unique, deterministic by seed, and they carry
no hint of whether the event is fraud. Subscriber activation and post parcel signals may predate
the window; every other event lies in ``[start, start + days)``.

Ground truth (``out_dir/truth/``)
---------------------------------
``operations.parquet``: op_id, type (mass_dialling, sim_box, roaming, wangiri, spoofed_caller_id,
    sms_phishing), origin_country (KH MM LA PH), target_country, scam_type, start_at, home_region,
    numbers, sender_ids, imeis, cells, mule_accounts, urls, domains, app_package.
``fraud_numbers.parquet``: number, op_id, type, role (local_sim, foreign_number, spoofed_caller_id),
    country, first_active_at, activated_at, calls_made. Every one appears as a caller in calls.
``victims.parquet``: number, op_id, op_type, scam_type, first_contact_at, decisive_kind (long_call or
    link_visit), decisive_event_id (the call or the scam SMS), decisive_started_at, decisive_at (when
    the decisive event was complete and observable: the call's end, the visit), first_payment_at
    (after decisive_at: minutes to hours for most scams, one to ten days after first contact for the
    slow ones; null, with payments 0 and no payment ids or mule account, for a victim hooked so late
    that the money moves after the window), first_payment_event_id, payment_event_ids, payments,
    amount, currency, mule_account, fraud_number, reported.
``mule_accounts.parquet``: account, op_id, layer (1 receives from victims, 2 from mules), holder_number,
    first_credit_at.
``scam_messages.parquet``: event_id, op_id, sender, recipient, lure, url, lang, sent_at.
``malicious_reports.parquet``: event_id, reporter, target_number (innocent), reported_at.
``wangiri_callbacks.parquet``: event_id, number, wangiri_number, op_id, called_back_at, duration_s.
``indicators.parquet``: type, value, op_id — every phone, sender ID, IMEI, URL, domain, account, app.
``hard_negatives.parquet``: number, profile (business_caller, traveller, new_subscriber,
    maliciously_reported) — innocent people who look a bit like fraud.
``manifest.json``: schema_version, config, window, files, counts, truth_counts, operations_by_type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from forewarn.sim.config import ScenarioConfig, ScenarioConfigError
from forewarn.sim.engine import (
    EVENT_FILES,
    SCHEMA_VERSION,
    TRUTH_FILES,
    ScenarioFiles,
    SimulationError,
    simulate,
)

__all__ = ["EVENT_FILES", "SCHEMA_VERSION", "GroundTruth", "ScenarioConfig", "ScenarioConfigError", "ScenarioFiles",
           "SimulationError", "load_truth", "simulate"]


@dataclass
class GroundTruth:
    """What really happened in a scenario; each table is a pandas DataFrame."""

    manifest: dict[str, Any]
    operations: Any
    fraud_numbers: Any
    victims: Any
    mule_accounts: Any
    scam_messages: Any
    malicious_reports: Any
    wangiri_callbacks: Any
    indicators: Any
    hard_negatives: Any

    @property
    def fraud_number_set(self) -> set[str]:
        return set(self.fraud_numbers["number"])

    @property
    def victim_set(self) -> set[str]:
        return set(self.victims["number"])


def load_truth(out_dir: str | Path) -> GroundTruth:
    """Read the ground truth a :func:`simulate` run wrote under ``out_dir/truth``."""
    truth = Path(out_dir) / "truth"
    manifest_path = truth / "manifest.json"
    if not manifest_path.is_file():
        raise SimulationError(f"no scenario ground truth in {out_dir} (missing truth/manifest.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise SimulationError(f"scenario schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
    tables = {}
    for name in TRUTH_FILES:
        path = truth / f"{name}.parquet"
        if not path.is_file():
            raise SimulationError(f"ground truth file {path} is missing")
        tables[name] = pq.read_table(path).to_pandas()
    return GroundTruth(manifest=manifest, **tables)
