"""Columnar event buffers and their Parquet writers.

Events are held as numpy columns of small integer codes (indices into the world's tables of
numbers, IMEIs, cells, accounts and texts) and turned into Arrow strings only when written, in
time order, one row group at a time, so memory stays bounded whatever the scenario size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forewarn.sim.ids import hex_ids

TS = pa.timestamp("us", tz="UTC")
AMOUNT = pa.decimal128(18, 2)

CALL_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()),
    ("caller", pa.string()), ("callee", pa.string()), ("start", TS), ("duration_s", pa.float64()),
    ("ring_s", pa.float64()), ("direction", pa.string()), ("call_type", pa.string()), ("ingress", pa.string()),
    ("caller_country", pa.string()), ("callee_country", pa.string()), ("imei", pa.string()),
    ("cell_id", pa.string()),
])
MESSAGE_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("sender", pa.string()),
    ("recipient", pa.string()), ("text", pa.string()), ("sent_at", TS), ("channel", pa.string()),
    ("ingress", pa.string()), ("lang", pa.string()),
])
PAYMENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("payer_account", pa.string()),
    ("payer_phone", pa.string()), ("payee_account", pa.string()), ("amount", AMOUNT), ("currency", pa.string()),
    ("paid_at", TS), ("channel", pa.string()), ("new_payee", pa.bool_()),
])
SIGNAL_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("provider", pa.string()),
    ("signal_type", pa.string()), ("subscriber", pa.string()), ("indicator_type", pa.string()),
    ("indicator_value", pa.string()), ("observed_at", TS), ("detail", pa.string()),
])
REPORT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("reporter", pa.string()),
    ("indicator_type", pa.string()), ("indicator_value", pa.string()), ("verdict", pa.string()),
    ("scam_type", pa.string()), ("loss_amount", AMOUNT), ("currency", pa.string()), ("reported_at", TS),
    ("lang", pa.string()),
])
SUBSCRIBER_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("number", pa.string()),
    ("activated_at", TS), ("country", pa.string()), ("home_region", pa.string()), ("language", pa.string()),
    ("kyc_verified", pa.bool_()), ("updated_at", TS),
])

CALL_TYPES = ("voice", "video", "voip")
INGRESS = ("domestic", "international", "roaming")
CHANNELS_MSG = ("sms", "chat")
CHANNELS_PAY = ("bank_transfer", "ewallet", "card", "crypto", "cash_deposit")

CALL_COLUMNS: dict[str, Any] = {"eid": np.uint64, "caller": np.int32, "callee": np.int32, "start": np.int64,
                "dur": np.float32, "ring": np.float32, "ctype": np.int8, "ingress": np.int8,
                "imei": np.int32, "cell": np.int32, "rec": np.int8}
MESSAGE_COLUMNS: dict[str, Any] = {"eid": np.uint64, "sender": np.int32, "recipient": np.int32, "text": np.int32,
                   "start": np.int64, "channel": np.int8, "ingress": np.int8, "lang": np.int8, "rec": np.int8}
PAYMENT_COLUMNS: dict[str, Any] = {"eid": np.uint64, "payer": np.int32, "phone": np.int32, "payee": np.int32,
                   "cents": np.int64, "cur": np.int8, "start": np.int64, "channel": np.int8, "new": np.int8}

Columns = dict[str, np.ndarray]


def empty(spec: Mapping[str, Any]) -> Columns:
    return {name: np.empty(0, dtype=dtype) for name, dtype in spec.items()}


def concat(parts: list[Columns], spec: Mapping[str, Any]) -> Columns:
    parts = [p for p in parts if len(p["start"])]
    if not parts:
        return empty(spec)
    return {name: np.concatenate([p[name] for p in parts]).astype(dtype, copy=False) for name, dtype in spec.items()}


def select(cols: Columns, mask: np.ndarray) -> Columns:
    return {name: arr[mask] for name, arr in cols.items()}


class TimeOrderedBuffer:
    """Rows that may arrive out of order; ``release(t)`` hands back, sorted, every row before ``t``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.parts: list[Columns] = []
        self.rows = 0

    def add(self, cols: Columns) -> None:
        if len(cols["start"]):
            self.parts.append({k: np.asarray(cols[k], dtype=self.spec[k]) for k in self.spec})
            self.rows += len(cols["start"])

    def release(self, before_us: int) -> Columns:
        allrows = concat(self.parts, self.spec)
        due = allrows["start"] < before_us
        out = select(allrows, due)
        rest = select(allrows, ~due)
        self.parts = [rest] if len(rest["start"]) else []
        self.rows = len(rest["start"])
        order = np.lexsort((out["eid"], out["start"]))  # time, then id: a total, seed-stable order
        return select(out, order)


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), type=pa.int64()).cast(TS)


def _take(table: pa.Array, idx: np.ndarray) -> pa.Array:
    """Strings of ``table`` at ``idx``; a negative index is a null."""
    idx = np.asarray(idx)
    mask = idx < 0
    indices = pa.array(np.where(mask, 0, idx).astype(np.int64), mask=mask if mask.any() else None)
    return table.take(indices)


def cents_to_decimal(cents: np.ndarray) -> pa.Array:
    """Exact decimal128(18, 2) amounts from integer cents (never through floats)."""
    cents = np.asarray(cents, dtype=np.int64)
    if not len(cents):
        return pa.array([], type=AMOUNT)
    # decimal128 is a little-endian 128-bit two's complement integer: low word, then sign word
    words = np.stack([cents, np.where(cents < 0, -1, 0).astype(np.int64)], axis=1)
    return pa.Array.from_buffers(AMOUNT, len(cents), [None, pa.py_buffer(words.tobytes())])


class Tables:
    """Arrow string tables the integer codes point into."""

    def __init__(self, parties: list[str], party_country: np.ndarray, imeis: list[str], cells: list[str],
                 accounts: list[str], account_country: np.ndarray, texts: list[str], countries: tuple[str, ...],
                 currencies: tuple[str, ...], languages: tuple[str, ...]) -> None:
        self.parties = pa.array(parties, type=pa.string())
        self.party_country = party_country
        self.imeis = pa.array(imeis, type=pa.string())
        self.cells = pa.array(cells, type=pa.string())
        self.accounts = pa.array(accounts, type=pa.string())
        self.account_country = account_country
        self.texts = pa.array(texts, type=pa.string())
        self.countries = pa.array(countries, type=pa.string())
        self.currencies = pa.array(currencies, type=pa.string())
        self.languages = pa.array(languages, type=pa.string())
        self.telco = pa.array([f"telco-{c.lower()}" for c in countries], type=pa.string())
        self.bank = pa.array([f"bank-{c.lower()}" for c in countries], type=pa.string())

    @staticmethod
    def const(value: str, n: int) -> pa.Array:
        return pa.array([value], type=pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))

    def calls(self, c: Columns) -> pa.Table:
        n = len(c["start"])
        return pa.Table.from_arrays([
            hex_ids("call", c["eid"]), _take(self.telco, c["rec"]), self.const("call", n),
            _take(self.parties, c["caller"]), _take(self.parties, c["callee"]), _ts(c["start"]),
            pa.array(c["dur"].astype(np.float64)), pa.array(c["ring"].astype(np.float64)),
            self.const("outgoing", n), _take(pa.array(CALL_TYPES), c["ctype"]), _take(pa.array(INGRESS), c["ingress"]),
            _take(self.countries, self.party_country[c["caller"]]), _take(self.countries, self.party_country[c["callee"]]),
            _take(self.imeis, c["imei"]), _take(self.cells, c["cell"]),
        ], schema=CALL_SCHEMA)

    def messages(self, c: Columns) -> pa.Table:
        n = len(c["start"])
        return pa.Table.from_arrays([
            hex_ids("msg", c["eid"]), _take(self.telco, c["rec"]), self.const("message", n),
            _take(self.parties, c["sender"]), _take(self.parties, c["recipient"]), _take(self.texts, c["text"]),
            _ts(c["start"]), _take(pa.array(CHANNELS_MSG), c["channel"]), _take(pa.array(INGRESS), c["ingress"]),
            _take(self.languages, c["lang"]),
        ], schema=MESSAGE_SCHEMA)

    def payments(self, c: Columns) -> pa.Table:
        n = len(c["start"])
        return pa.Table.from_arrays([
            hex_ids("pay", c["eid"]), _take(self.bank, self.account_country[c["payer"]]), self.const("payment", n),
            _take(self.accounts, c["payer"]), _take(self.parties, c["phone"]), _take(self.accounts, c["payee"]),
            cents_to_decimal(c["cents"]), _take(self.currencies, c["cur"]), _ts(c["start"]),
            _take(pa.array(CHANNELS_PAY), c["channel"]), pa.array(c["new"].astype(bool)),
        ], schema=PAYMENT_SCHEMA)


class ChunkWriter:
    """A Parquet file written one row group at a time."""

    def __init__(self, path: Path, schema: pa.Schema, convert: Callable[[Columns], pa.Table]) -> None:
        self.path = path
        self.convert = convert
        self.writer = pq.ParquetWriter(path, schema, compression="zstd", compression_level=1)
        self.rows = 0

    def write(self, cols: Columns) -> int:
        n = len(cols["start"])
        if n:
            self.writer.write_table(self.convert(cols), row_group_size=max(n, 1))
            self.rows += n
        return n

    def close(self) -> None:
        self.writer.close()


def write_table(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path, compression="zstd", compression_level=1)
