"""Vectorised identifiers: event ids, phone numbers, IMEIs, bank accounts.

Event ids are ``<kind>-<16 hex>`` where the hex is a keyed bijective 64-bit mix of (stream,
counter): unique, deterministic by seed, and saying nothing about whether the event is fraud.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forewarn.sim.geography import COUNTRIES

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
COUNTER_BITS = 44


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection on uint64."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def event_keys(seed: int, stream: int, start: int, count: int) -> np.ndarray:
    """``count`` unique uint64 keys for counters ``start..start+count`` of ``stream`` (< 2**20)."""
    counters = np.arange(start, start + count, dtype=np.uint64)
    raw = (np.uint64(stream) << np.uint64(COUNTER_BITS)) | counters
    key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return _mix64(raw ^ key) if count else np.empty(0, dtype=np.uint64)


def hex_ids(prefix: str, keys: np.ndarray) -> pa.Array:
    """Arrow strings ``prefix-`` + 16 lowercase hex digits of each key (vectorised)."""
    n = len(keys)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = ((keys[:, None] >> shifts[None, :]) & np.uint64(0xF)).astype(np.uint8)
    chars = _HEX[nibbles].reshape(n * 16)
    body = pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(chars.tobytes())])
    return pc.binary_join_element_wise(pa.scalar(prefix + "-"), body.cast(pa.string()), "")


def digits_strings(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal strings of non-negative ints (numpy unicode array)."""
    return np.char.zfill(values.astype(np.int64).astype(str), width)


def mobile_numbers(rng: np.random.Generator, country: str, count: int, exclude: set[str] | None = None) -> list[str]:
    """``count`` distinct valid E.164 mobile numbers of ``country`` (none of ``exclude``)."""
    spec = COUNTRIES[country]
    exclude = exclude or set()
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        need = (count - len(out)) * 11 // 10 + 8
        prefixes = np.array(spec.mobile_prefixes)[rng.integers(0, len(spec.mobile_prefixes), need)]
        tails = digits_strings(rng.integers(0, 10 ** spec.subscriber_digits, need), spec.subscriber_digits)
        for number in np.char.add(np.char.add("+" + spec.calling_code, prefixes), tails).tolist():
            if number not in seen and number not in exclude:
                seen.add(number)
                out.append(number)
                if len(out) == count:
                    break
    return out


def luhn_complete(body14: np.ndarray) -> np.ndarray:
    """Append the Luhn check digit to rows of 14 digits (uint8 matrix n×14) → n×15."""
    digits = body14.astype(np.int64)
    doubled = digits[:, ::-1].copy()
    doubled[:, 0::2] *= 2
    doubled[doubled > 9] -= 9
    check = (10 - doubled.sum(axis=1) % 10) % 10
    return np.concatenate([body14, check[:, None].astype(body14.dtype)], axis=1)


# Fictional type allocation codes (TACs) for devices: phones and SIM-box GSM modules.
PHONE_TACS = ("35332211", "35891003", "86012304", "35467511", "86769205", "35209906", "35678907", "86453208")
GATEWAY_TACS = ("86301501", "86301502")


def imeis(rng: np.random.Generator, count: int, tacs: tuple[str, ...] = PHONE_TACS) -> list[str]:
    """``count`` IMEIs with valid Luhn check digits (may repeat only with negligible probability)."""
    if count == 0:
        return []
    tac = np.array([[int(ch) for ch in t] for t in tacs], dtype=np.uint8)[rng.integers(0, len(tacs), count)]
    serial = rng.integers(0, 10, (count, 6), dtype=np.uint8)
    full = luhn_complete(np.concatenate([tac, serial], axis=1))
    return ["".join(map(str, row)) for row in full.tolist()]


def accounts(rng: np.random.Generator, banks: tuple[str, ...], count: int, digits: int = 11) -> list[str]:
    """``count`` distinct ``BANK:NNNN`` account identifiers."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        need = count - len(out) + 4
        bank = np.array(banks)[rng.integers(0, len(banks), need)]
        number = digits_strings(rng.integers(10 ** (digits - 1), 10 ** digits, need), digits)
        for acc in np.char.add(np.char.add(bank, ":"), number).tolist():
            if acc not in seen:
                seen.add(acc)
                out.append(acc)
                if len(out) == count:
                    break
    return out
