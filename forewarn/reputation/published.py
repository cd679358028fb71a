"""A reputation snapshot published to files, so that several worker processes share one index.

Building a snapshot from the store is Python work proportional to the indicators (seconds per
million rows); done inside a worker it would hold that worker's interpreter and stall its
decisions. So ``forewarn firewall serve`` runs one *publisher* process that builds each snapshot
and writes it as a *generation* directory::

    <directory>/gen-<ns>-<pid>/{keys,score,last_seen,flags,scam}.npy, filter.bin, meta.json
    <directory>/CURRENT          the name of the newest complete generation (replaced atomically)
    <directory>/REBUILD          touched by a worker that wants a rebuild now (after an appeal)

and every worker maps the newest generation read-only (:class:`PublishedReader`): swapping in a new
one costs a worker a few file opens and no copy, whatever the size of the index, and the arrays are
held once in the page cache for all workers. A generation is written under a temporary name and
renamed when complete, so a reader never sees half of one; the last few are kept so that a worker
still opening an older one finds it.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forewarn.reputation.decay import DecayModel
from forewarn.reputation.index import AllowLists, ReputationSnapshot

log = logging.getLogger("forewarn.reputation")

FORMAT = 1
ARRAYS: dict[str, np.dtype[Any]] = {"keys": np.dtype(np.int64), "score": np.dtype(np.uint8),
                                    "last_seen": np.dtype(np.uint32), "flags": np.dtype(np.uint8),
                                    "scam": np.dtype(np.uint8)}
CURRENT = "CURRENT"
REBUILD = "REBUILD"
KEEP_GENERATIONS = 3


class PublishedIndexError(RuntimeError):
    """A published generation that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Published:
    """One loaded generation: the snapshot and the subscribers' languages and home regions."""

    generation: str
    snapshot: ReputationSnapshot
    languages: Mapping[str, str]
    regions: Mapping[str, str]


def publish(directory: Path, snapshot: ReputationSnapshot, languages: Mapping[str, str] | None = None,
            regions: Mapping[str, str] | None = None, *, keep: int = KEEP_GENERATIONS) -> str:
    """Write ``snapshot`` as a new generation, make it the current one, drop the oldest; returns its name."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"gen-{time.time_ns():020d}-{os.getpid()}"
    tmp = directory / f".{name}.tmp"
    tmp.mkdir()
    try:
        for field, dtype in ARRAYS.items():
            np.save(tmp / f"{field}.npy", np.ascontiguousarray(getattr(snapshot, field), dtype=dtype))
        (tmp / "filter.bin").write_bytes(snapshot.filter_bytes)
        meta = {"format": FORMAT, "count": len(snapshot), "built_at": snapshot.built_at,
                "scam_types": list(snapshot.scam_types),
                "decay": {"lifetime_days": dict(snapshot.decay.lifetime_days), "speed": snapshot.decay.speed},
                "allow": {"numbers": dict(snapshot.allow.numbers),
                          "personal": {owner: sorted(values) for owner, values in snapshot.allow.personal.items()}},
                "languages": dict(languages or {}), "regions": dict(regions or {})}
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp.rename(directory / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = directory / f".{CURRENT}.{os.getpid()}"
    pointer.write_text(name, encoding="utf-8")
    os.replace(pointer, directory / CURRENT)
    generations = sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("gen-"))
    for old in generations[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)  # a worker mapping it keeps its mapping (POSIX)
    return name


def current_generation(directory: Path) -> str | None:
    try:
        name = (directory / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def request_rebuild(directory: Path) -> None:
    """Ask the publisher for a rebuild now (e.g. after an appeal decision) instead of at its next interval."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REBUILD).touch()


def take_rebuild_request(directory: Path) -> bool:
    """True (once) when a worker asked for a rebuild since the last call."""
    try:
        (directory / REBUILD).unlink()
    except FileNotFoundError:
        return False
    return True


def _map_array(path: Path, dtype: np.dtype[Any], count: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False) if count else np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PublishedIndexError(f"cannot read {path}: {exc}") from None
    if arr.dtype != dtype or arr.ndim != 1 or arr.shape[0] != count:
        raise PublishedIndexError(f"{path} holds {arr.dtype}[{arr.shape}], expected {dtype}[{count}]")
    return arr


def load_generation(directory: Path, name: str, decay: DecayModel) -> Published:
    """Map one generation read-only. ``decay`` is the worker's own policy's (checked against the
    publisher's, so that a worker never scores with a model it was not built for)."""
    gen = directory / name
    try:
        meta = json.loads((gen / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishedIndexError(f"cannot read {gen / 'meta.json'}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise PublishedIndexError(f"{gen} has format {meta.get('format')!r}; this version reads {FORMAT}")
    published_decay = DecayModel(lifetime_days=meta["decay"]["lifetime_days"], speed=meta["decay"]["speed"])
    if published_decay != decay:
        raise PublishedIndexError(f"{gen} was built with decay {published_decay}, the worker's policy has {decay}: "
                                  "the publisher and the workers must use the same policy")
    count = int(meta["count"])
    arrays = {field: _map_array(gen / f"{field}.npy", dtype, count) for field, dtype in ARRAYS.items()}
    try:
        with open(gen / "filter.bin", "rb") as fh:
            bit_filter = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise PublishedIndexError(f"cannot map {gen / 'filter.bin'}: {exc}") from None
    allow = AllowLists(numbers=dict(meta["allow"]["numbers"]),
                       personal={owner: frozenset(values) for owner, values in meta["allow"]["personal"].items()})
    try:
        snapshot = ReputationSnapshot(arrays["keys"], arrays["score"], arrays["last_seen"], arrays["flags"],
                                      arrays["scam"], meta["scam_types"], decay, allow, float(meta["built_at"]),
                                      bit_filter)
    except ValueError as exc:
        raise PublishedIndexError(f"{gen}: {exc}") from None
    return Published(name, snapshot, dict(meta["languages"]), dict(meta["regions"]))


class PublishedReader:
    """A worker's view of a publisher's directory: :meth:`load` returns the newest generation, or
    None while it is the one already loaded (checking costs one small file read)."""

    def __init__(self, directory: Path, decay: DecayModel) -> None:
        self.directory = directory
        self.decay = decay
        self.generation: str | None = None

    def load(self) -> Published | None:
        name = current_generation(self.directory)
        if name is None:
            raise PublishedIndexError(f"no published reputation index in {self.directory} yet "
                                      "(is `forewarn firewall serve`'s publisher running?)")
        if name == self.generation:
            return None
        published = load_generation(self.directory, name, self.decay)
        self.generation = name
        return published


def run_publisher(build: Callable[[bool], tuple[ReputationSnapshot, Mapping[str, str], Mapping[str, str]] | None],
                  directory: Path, interval_s: float, should_stop: Callable[[float], bool],
                  poll_s: float = 0.2) -> None:
    """Publish ``build(force)`` now, then every ``interval_s`` and whenever a worker asks, until
    ``should_stop(timeout)`` (which waits up to ``timeout`` seconds) says so. ``build`` returns None
    when nothing changed since its last snapshot; a failed build is logged and the workers keep
    the previous generation."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".gen-*.tmp"):  # left by a publisher that was killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    snapshot = build(True)
    assert snapshot is not None
    publish(directory, *snapshot)
    take_rebuild_request(directory)
    next_at = time.monotonic() + interval_s
    while not should_stop(poll_s):
        asked = take_rebuild_request(directory)
        if not asked and time.monotonic() < next_at:
            continue
        next_at = time.monotonic() + interval_s
        try:
            built = build(asked)
            if built is not None:
                publish(directory, *built)
        except Exception as exc:  # the store may be briefly unreachable: keep serving the last generation
            log.warning("reputation publisher: build failed, workers keep the previous index: %s: %s",
                        type(exc).__name__, exc)
