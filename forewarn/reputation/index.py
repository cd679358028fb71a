"""The in-memory reputation index: an immutable snapshot of every scored indicator, swapped whole.

A :class:`ReputationSnapshot` holds, per indicator key (see :mod:`forewarn.reputation.keys`), the
base score combined over all its sources (0–100), the latest time any source saw it, flags and a
scam type, in parallel sorted numpy arrays (15 bytes per indicator: ~150 MB for ten million), plus
a one-hash bit filter (4 MiB per million keys, ~7 % false positives at that load) so that most
numbers, which are not listed, are answered without a binary search. Decay is applied at look-up
time, so a snapshot stays correct between refreshes.

:class:`ReputationIndex` holds the current snapshot and rebuilds it in a background thread from a
loader (normally :func:`forewarn.reputation.loader.load_snapshot`); readers never lock: they read
one attribute, which Python swaps atomically.
"""

from __future__ import annotations

import logging
import math
import mmap
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from forewarn.reputation.decay import DecayModel

log = logging.getLogger("forewarn.reputation")

# Flags of an entry (bit set over all its sources).
TRUSTED = 1  # asserted by an indicator source (local detector, approved partner) or an analyst
REPORTS = 2  # citizen reports contributed
PARTNER = 4  # a partner node asserted it
VERDICT = 8  # an analyst confirmed it (appeal rejected or verdict "scam")
APPEAL_PENDING = 16  # its owner appealed and no analyst has decided yet
APPEAL_OVERDUE = 32  # ... and the policy's deadline has passed: the mark is lifted until decided

# The bit filter: bytes when built here, a read-only mapping when loaded from a published file.
BitFilter = bytes | mmap.mmap
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads sequential phone numbers over the filter
_M64 = (1 << 64) - 1


class Entry(NamedTuple):
    """One look-up result; ``score`` is the decayed score now, ``base`` the undecayed one."""

    score: float
    base: float
    last_seen: float
    flags: int
    scam_type: str | None
    lifetime_s: float


@dataclass(frozen=True)
class AllowLists:
    """Entries that always win over block rules. ``numbers`` maps a number, short code or sender ID to
    its kind (emergency, government, sender_id, number); ``personal`` maps a subscriber to the
    numbers and sender IDs that subscriber allows."""

    numbers: Mapping[str, str] = field(default_factory=dict)
    personal: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def kind_of(self, value: str) -> str | None:
        return self.numbers.get(value)

    def personal_allows(self, owner: str, value: str) -> bool:
        allowed = self.personal.get(owner)
        return allowed is not None and value in allowed


def _filter_bits(n_keys: int) -> int:
    """log2 of the filter size in bits: ~32 bits per key, at least 2**16."""
    return max(16, math.ceil(math.log2(max(n_keys, 1) * 32)))


class ReputationSnapshot:
    """An immutable, compact table of scored indicators. Build with :meth:`from_rows`."""

    __slots__ = ("_bits", "_filter", "_keys", "_lifetimes", "_mv", "_n", "_shift", "allow", "built_at",
                 "decay", "flags", "keys", "last_seen", "scam", "scam_types", "score")

    def __init__(self, keys: np.ndarray, score: np.ndarray, last_seen: np.ndarray, flags: np.ndarray,
                 scam: np.ndarray, scam_types: Sequence[str | None], decay: DecayModel,
                 allow: AllowLists | None = None, built_at: float | None = None,
                 bit_filter: BitFilter | None = None) -> None:
        """``bit_filter``, when given, is this key set's filter as :attr:`filter_bytes` gave it (e.g.
        mapped from a published file): it is used as is instead of being recomputed."""
        self.keys = keys
        self.score = score
        self.last_seen = last_seen
        self.flags = flags
        self.scam = scam
        self.scam_types = tuple(scam_types)
        self.decay = decay
        self.allow = allow or AllowLists()
        self.built_at = time.time() if built_at is None else built_at
        self._n = int(keys.shape[0])
        # Binary search in Python over a memoryview of the keys: numpy's searchsorted releases the
        # GIL, and taking it back can wait a whole switch interval (5 ms) behind a background
        # thread (refresher, log flusher); bisect keeps it, at ~1.5 us for ten million keys.
        self._mv = np.ascontiguousarray(keys, dtype=np.int64).data.cast("B").cast("q")
        self._lifetimes = decay.lifetimes_by_code()
        self._bits = _filter_bits(self._n)
        self._shift = 64 - self._bits
        if bit_filter is not None:
            if len(bit_filter) != 1 << (self._bits - 3):
                raise ValueError(f"a filter for {self._n} keys has {1 << (self._bits - 3)} bytes, "
                                 f"not {len(bit_filter)}")
            self._filter: BitFilter = bit_filter
        else:
            filt = np.zeros(1 << (self._bits - 3), dtype=np.uint8)
            if self._n:
                with np.errstate(over="ignore"):
                    h = (keys.astype(np.uint64) * np.uint64(_MIX)) >> np.uint64(self._shift)
                np.bitwise_or.at(filt, (h >> np.uint64(3)).astype(np.int64),
                                 (np.uint8(1) << (h & np.uint64(7)).astype(np.uint8)))
            self._filter = filt.tobytes()
        self._keys = keys

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_rows(cls, keys: np.ndarray, confidence: np.ndarray, last_seen: np.ndarray, flags: np.ndarray,
                  scam: np.ndarray, scam_types: Sequence[str | None], decay: DecayModel,
                  allow: AllowLists | None = None, built_at: float | None = None) -> ReputationSnapshot:
        """Combine per-source rows into one entry per key.

        ``confidence`` is each row's effective confidence in [0, 1] (source weight and sightings
        already applied); rows of one key combine by noisy-OR (independent sources each add
        evidence), keep the latest ``last_seen``, OR their flags and take the scam type of the most
        confident row.
        """
        keys = np.asarray(keys, dtype=np.int64)
        conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 0.999)
        if keys.shape[0] == 0:
            empty = np.zeros(0)
            return cls(empty.astype(np.int64), empty.astype(np.uint8), empty.astype(np.uint32),
                       empty.astype(np.uint8), empty.astype(np.uint8), scam_types, decay, allow, built_at)
        order = np.lexsort((-conf, keys))  # by key, most confident row first
        keys_sorted = keys[order]
        starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
        log_miss = np.add.reduceat(np.log1p(-conf[order]), starts)
        combined = 1.0 - np.exp(log_miss)
        score = np.rint(combined * 100.0).astype(np.uint8)
        seen = np.maximum.reduceat(np.asarray(last_seen, dtype=np.float64)[order], starts)
        flag = np.bitwise_or.reduceat(np.asarray(flags, dtype=np.uint8)[order], starts)
        scam_code = np.asarray(scam, dtype=np.uint8)[order][starts]
        return cls(keys_sorted[starts].copy(), score, np.clip(seen, 0, 2**32 - 1).astype(np.uint32), flag,
                   scam_code, scam_types, decay, allow, built_at)

    def with_flags(self, keys: Sequence[int], bits: int) -> ReputationSnapshot:
        """A copy whose entries for ``keys`` (when present) also carry ``bits``."""
        flags = self.flags.copy()
        if len(keys) and self._n:
            wanted = np.asarray(list(keys), dtype=np.int64)
            pos = np.clip(self.keys.searchsorted(wanted), 0, self._n - 1)
            hit = self.keys[pos] == wanted
            flags[pos[hit]] |= np.uint8(bits)
        return ReputationSnapshot(self.keys, self.score, self.last_seen, flags, self.scam, self.scam_types,
                                  self.decay, self.allow, self.built_at, self._filter)

    # --- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def filter_bytes(self) -> bytes:
        """The bit filter, for publishing the snapshot (see :mod:`forewarn.reputation.published`)."""
        return bytes(self._filter)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays and the filter (the allow-lists are small and not counted)."""
        return int(self.keys.nbytes + self.score.nbytes + self.last_seen.nbytes + self.flags.nbytes
                   + self.scam.nbytes + len(self._filter))

    def position(self, key: int) -> int:
        """Index of ``key`` in the arrays, or -1. The bit filter answers most misses."""
        h = ((key * _MIX) & _M64) >> self._shift
        if not self._filter[h >> 3] & (1 << (h & 7)):
            return -1
        mv = self._mv
        i = bisect_left(mv, key)
        if i < self._n and mv[i] == key:
            return i
        return -1

    def get(self, key: int, now: float | None = None) -> Entry | None:
        """The entry of ``key`` with its score decayed to ``now`` (epoch seconds), or None."""
        i = self.position(key)
        if i < 0:
            return None
        now = time.time() if now is None else now
        base = float(self.score[i])
        seen = float(self.last_seen[i])
        lifetime = float(self._lifetimes[key >> 56])
        factor = self.decay.factor(now - seen, lifetime)
        code = int(self.scam[i])
        return Entry(base * factor, base, seen, int(self.flags[i]), self.scam_types[code] if code else None,
                     lifetime)

    def scores_many(self, keys: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised: decayed scores (0 when absent) and flags for an array of keys."""
        keys = np.asarray(keys, dtype=np.int64)
        if self._n == 0:
            return np.zeros(keys.shape[0]), np.zeros(keys.shape[0], dtype=np.uint8)
        pos = np.clip(self.keys.searchsorted(keys), 0, self._n - 1)
        hit = self.keys[pos] == keys
        age = now - self.last_seen[pos].astype(np.float64)
        lifetimes = self._lifetimes[(keys >> 56).astype(np.int64)]
        scores = self.score[pos].astype(np.float64) * self.decay.factor_many(age, lifetimes)
        return np.where(hit, scores, 0.0), np.where(hit, self.flags[pos], 0).astype(np.uint8)


def empty_snapshot(decay: DecayModel | None = None) -> ReputationSnapshot:
    return ReputationSnapshot.from_rows(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.uint8),
                                        np.zeros(0, np.uint8), (None,), decay or DecayModel())


class ReputationIndex:
    """The current snapshot plus a background refresher that swaps in a new one every ``refresh_s``.

    ``loader`` builds a complete snapshot (it may take seconds for millions of rows); until the
    first load finishes the index answers from an empty snapshot, and a failed refresh keeps the
    previous snapshot (logged), so decisions never stop.
    """

    def __init__(self, loader: Callable[[], ReputationSnapshot], refresh_s: float = 60.0,
                 decay: DecayModel | None = None) -> None:
        self._loader = loader
        self.refresh_s = refresh_s
        self.snapshot: ReputationSnapshot = empty_snapshot(decay)
        self.last_error: str | None = None
        self.refreshes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> ReputationSnapshot:
        """Load a new snapshot now and swap it in (concurrent calls load once each, in turn)."""
        with self._lock:
            snap = self._loader()
            self.snapshot = snap  # one attribute store: readers see the old or the new, never a mix
            self.refreshes += 1
            self.last_error = None
            return snap

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the previous snapshot; say why in the log
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("reputation refresh failed; keeping the previous snapshot: %s", self.last_error)

    def start(self) -> None:
        """Start the background refresher (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="reputation-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
