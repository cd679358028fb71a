"""The ristretto255 group operations PSI needs, from libsodium.

PyNaCl exposes ``crypto_scalarmult_ristretto255`` and ``crypto_core_ristretto255_from_hash`` in
``nacl.bindings`` only in builds that declare them; the PyNaCl wheel on this platform (1.6.x) does
not, so the same libsodium functions are called through ctypes on the system libsodium (Debian's
``libsodium23``, ≥ 1.0.18, which has ristretto255). ctypes releases the GIL during each call, so
batches run on all cores from a thread pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

POINT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64


class RistrettoUnavailable(RuntimeError):
    """No libsodium with ristretto255 on this machine; the message says what to install."""


class InvalidPoint(ValueError):
    """Bytes that are not a valid ristretto255 point (or a multiplication that gave the identity)."""


class _Backend:
    def __init__(self) -> None:
        self.from_hash: Callable[[bytes], bytes]
        self.scalarmult: Callable[[bytes, bytes], bytes]
        self.random_scalar: Callable[[], bytes]
        self.name = ""
        try:
            from nacl import bindings as nb  # newer PyNaCl builds expose these directly

            self.from_hash = nb.crypto_core_ristretto255_from_hash  # type: ignore[attr-defined]
            self.scalarmult = nb.crypto_scalarmult_ristretto255  # type: ignore[attr-defined]
            self.random_scalar = nb.crypto_core_ristretto255_scalar_random  # type: ignore[attr-defined]
            self.name = "pynacl"
            return
        except (ImportError, AttributeError):
            pass
        path = os.environ.get("FOREWARN_LIBSODIUM") or ctypes.util.find_library("sodium")
        if not path:
            raise RistrettoUnavailable("PSI needs libsodium ≥ 1.0.18 (ristretto255): apt-get install libsodium23")
        lib = ctypes.CDLL(path)
        if lib.sodium_init() < 0 or not hasattr(lib, "crypto_scalarmult_ristretto255"):
            raise RistrettoUnavailable(f"{path} has no ristretto255 (libsodium ≥ 1.0.18 needed)")
        self.lib = lib
        self.name = f"libsodium ({path})"

        def from_hash(h: bytes) -> bytes:
            out = ctypes.create_string_buffer(POINT_BYTES)
            lib.crypto_core_ristretto255_from_hash(out, h)
            return out.raw

        def scalarmult(n: bytes, p: bytes) -> bytes:
            out = ctypes.create_string_buffer(POINT_BYTES)
            if lib.crypto_scalarmult_ristretto255(out, n, p) != 0:
                raise InvalidPoint("not a valid ristretto255 point")
            return out.raw

        def random_scalar() -> bytes:
            out = ctypes.create_string_buffer(SCALAR_BYTES)
            lib.crypto_core_ristretto255_scalar_random(out)
            return out.raw

        self.from_hash, self.scalarmult, self.random_scalar = from_hash, scalarmult, random_scalar


@lru_cache(maxsize=1)
def backend() -> _Backend:
    return _Backend()


def random_scalar() -> bytes:
    return backend().random_scalar()


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _chunks(items: Sequence[bytes], n: int) -> list[Sequence[bytes]]:
    size = max(1, -(-len(items) // n))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _parallel(func: Callable[[Sequence[bytes]], list[bytes]], items: Sequence[bytes]) -> list[bytes]:
    if len(items) < 2000:
        return func(items)
    parts = _chunks(items, _workers())
    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(func, parts))
    return [x for part in results for x in part]


def hash_to_points(digests: Sequence[bytes]) -> list[bytes]:
    """Map 64-byte hashes to group elements (Elligator over ristretto255)."""
    fh = backend().from_hash
    if any(len(d) != HASH_BYTES for d in digests):
        raise ValueError("from_hash needs 64-byte inputs")
    return _parallel(lambda part: [fh(d) for d in part], digests)


def multiply_all(scalar: bytes, points: Sequence[bytes]) -> list[bytes]:
    """``scalar · P`` for every point; :class:`InvalidPoint` if any input is not a valid point."""
    sm = backend().scalarmult
    if len(scalar) != SCALAR_BYTES:
        raise ValueError("a scalar has 32 bytes")

    def run(part: Sequence[bytes]) -> list[bytes]:
        out = []
        for p in part:
            if len(p) != POINT_BYTES:
                raise InvalidPoint("a point has 32 bytes")
            out.append(sm(scalar, p))
        return out

    return _parallel(run, points)
