"""A running firewall for one node: the policy, a reputation index refreshed in the background from
the store, guarded live counters (Redis when ``FOREWARN_REDIS_URL`` is set, so that several worker
processes share them; in-process otherwise), content screening when installed, and subscribers'
languages. Each worker process builds its own service and keeps its own index snapshot.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from forewarn.config import Settings
from forewarn.firewall.counters import GuardedCounters, LiveCounterSource, describe, make_counters
from forewarn.firewall.decisions import DecisionLog
from forewarn.firewall.engine import Firewall
from forewarn.firewall.policy import Policy, load_policy
from forewarn.firewall.retention import RetentionPruner
from forewarn.firewall.screening import ContentScreener, default_screener
from forewarn.firewall.stalls import StallMonitor
from forewarn.model.indicators import utcnow
from forewarn.reputation.index import ReputationIndex, ReputationSnapshot
from forewarn.reputation.loader import load_snapshot, store_fingerprint
from forewarn.reputation.published import PublishedReader, request_rebuild, run_publisher
from forewarn.store import Store
from forewarn.store import schema as t

log = logging.getLogger("forewarn.firewall")
_UNSET: Any = object()


def load_subscribers(store: Store) -> tuple[dict[str, str], dict[str, str]]:
    """Subscriber number -> language and number -> home region, from stored ``subscriber`` events
    (the latest record wins)."""
    languages: dict[str, str] = {}
    regions: dict[str, str] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.subject, t.events.c.payload).where(t.events.c.kind == "subscriber")
                            .order_by(t.events.c.occurred_at))
        for subject, payload in rows:
            data = payload if isinstance(payload, dict) else {}
            for out, field in ((languages, "language"), (regions, "home_region")):
                value = data.get(field)
                if value:
                    out[subject] = str(value)
                else:
                    out.pop(subject, None)
    return languages, regions


def load_languages(store: Store) -> dict[str, str]:
    """Subscriber number -> language, from stored ``subscriber`` events (the latest record wins)."""
    return load_subscribers(store)[0]


class SnapshotBuilder:
    """Builds snapshots from the store: a new one when the store changed, None otherwise; a full
    rebuild at least every ten refresh intervals anyway (expiries and appeal deadlines pass
    without any write)."""

    def __init__(self, store: Store, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self._fingerprint: tuple[Any, ...] = ()
        self._built_at = 0.0

    def __call__(self, force: bool = False) -> tuple[ReputationSnapshot, dict[str, str], dict[str, str]] | None:
        with self.store.engine.connect() as conn:
            fingerprint = store_fingerprint(conn)
            if (not force and fingerprint == self._fingerprint
                    and time.time() - self._built_at < max(10 * self.policy.refresh_s, 60.0)):
                return None
            snap = load_snapshot(conn, self.policy.reputation, utcnow())
        languages, regions = load_subscribers(self.store)
        self._fingerprint, self._built_at = fingerprint, snap.built_at
        return snap, languages, regions


class FirewallService:
    """Owns the index refresher and the :class:`Firewall` built on it.

    The index comes from the store (built in this process) or, with ``published`` (the directory
    of a publisher process, see :mod:`forewarn.reputation.published`), from the newest published
    generation, checked every ``published_poll_s``: several workers then share one build and a
    refresh never holds up this process's decisions.
    """

    def __init__(self, store: Store, policy: Policy, *, counters: LiveCounterSource | None = _UNSET,
                 screener: ContentScreener | None = _UNSET, redis_url: str | None = None,
                 start_refresher: bool = True, counters_namespace: str = "fw:attempts",
                 decision_log: DecisionLog | None = _UNSET, published: Path | None = None,
                 published_poll_s: float = 1.0, prune: bool | None = None) -> None:
        self.store = store
        self.policy = policy
        if counters is _UNSET:
            counters = (make_counters(redis_url, policy.counters_timeout_ms, counters_namespace)
                        if policy.counters_enabled else None)
        if screener is _UNSET:
            screener = default_screener()
        self.counters_source = counters
        guarded = (GuardedCounters(counters, policy.counters_cache_s, policy.counters_failure_backoff_s,
                                   timeout_s=policy.counters_timeout_ms / 1000.0)
                   if counters is not None else None)
        self.published = published
        self._reader = PublishedReader(published, policy.reputation.decay) if published is not None else None
        self._builder = SnapshotBuilder(store, policy)
        self.index = ReputationIndex(self._load, refresh_s=published_poll_s if published else policy.refresh_s,
                                     decay=policy.reputation.decay)
        self.firewall = Firewall(self.index, policy, guarded, screener)
        if decision_log is _UNSET:
            decision_log = DecisionLog(store)
        self.decision_log = decision_log
        self.firewall.decision_log = decision_log
        self.index.refresh()
        self.guarded_counters = guarded
        self.stall_monitor: StallMonitor | None = None  # FOREWARN_STALL_LOG, see prepare_worker
        # The decision log's retention is applied by the long-running part: the index publisher
        # when there is one (``forewarn firewall serve``), else this service when it logs decisions.
        if prune is None:
            prune = start_refresher and published is None and decision_log is not None
        self.pruner = RetentionPruner(store, policy) if prune else None
        if self.pruner is not None:
            self.pruner.start()
        if start_refresher:
            self.index.start()
            if decision_log is not None:
                decision_log.start()
            if guarded is not None:  # a served firewall counts attempts off the request path
                guarded.start()

    def _load(self) -> ReputationSnapshot:
        """A new snapshot when there is one, else the current one."""
        if self._reader is not None:
            published = self._reader.load()
            if published is None:
                return self.index.snapshot
            self.firewall.languages, self.firewall.regions = published.languages, published.regions
            return published.snapshot
        built = self._builder(force=not self.index.refreshes)
        if built is None:
            return self.index.snapshot
        snap, languages, regions = built
        self.firewall.languages, self.firewall.regions = languages, regions  # swapped whole, like the snapshot
        return snap

    def refresh(self) -> ReputationSnapshot:
        """Rebuild the snapshot now (e.g. right after an appeal decision). With a publisher, ask it to
        rebuild: every worker then swaps the new generation in within its poll interval."""
        if self.published is not None:
            request_rebuild(self.published)
            return self.index.snapshot
        return self.index.refresh()

    def stats(self) -> dict[str, Any]:
        snap = self.index.snapshot
        return {"indicators": len(snap), "index_bytes": snap.nbytes,
                "index_source": f"published:{self.published}" if self.published is not None else "store",
                "index_generation": self._reader.generation if self._reader is not None else None,
                "built_at": datetime.fromtimestamp(snap.built_at).astimezone().isoformat(),
                "refreshes": self.index.refreshes, "last_refresh_error": self.index.last_error,
                "allow_list_entries": len(snap.allow.numbers) + sum(len(v) for v in snap.allow.personal.values()),
                "counters": describe(self.counters_source),
                "screening": describe(self.firewall.screener), "policy": list(self.policy.source),
                "country": self.policy.country, "worker_pid": os.getpid(),
                "decision_log": self.decision_log.stats() if self.decision_log is not None else None,
                "retention": self.pruner.stats() if self.pruner is not None else None,
                "counters_queue": self.guarded_counters.stats() if self.guarded_counters is not None else None}

    def flush(self) -> int:
        """Write the buffered decisions and counts to the store now."""
        return self.decision_log.flush() if self.decision_log is not None else 0

    def close(self) -> None:
        if self.stall_monitor is not None:
            self.stall_monitor.write()
        self.index.stop()
        if self.pruner is not None:
            self.pruner.stop()
        if self.guarded_counters is not None:
            self.guarded_counters.close()
        if self.decision_log is not None:
            self.decision_log.close()


_LOCK = threading.Lock()


def service_for(state: Any, settings: Settings, store: Store) -> FirewallService:
    """The service kept in ``state`` (e.g. ``app.state``), created on first use."""
    svc = getattr(state, "firewall", None)
    if svc is None:
        with _LOCK:
            svc = getattr(state, "firewall", None)
            if svc is None:
                policy = load_policy(settings.country, settings.extra.get("firewall_policy"))
                published = os.environ.get(INDEX_ENV)
                svc = FirewallService(store, policy, redis_url=settings.redis_url,
                                      counters_namespace=os.environ.get("FOREWARN_FIREWALL_NAMESPACE", "fw:attempts"),
                                      published=Path(published) if published else None)
                state.firewall = svc
    return svc  # type: ignore[no-any-return]


# Set by `forewarn firewall serve` for its workers: where the publisher writes the index, and that
# each worker builds its firewall at start-up rather than on the first decision.
INDEX_ENV = "FOREWARN_FIREWALL_INDEX"
PRELOAD_ENV = "FOREWARN_FIREWALL_PRELOAD"
SWITCH_INTERVAL_S = 0.0005


def preload_requested() -> bool:
    return os.environ.get(PRELOAD_ENV, "") not in ("", "0")


def prepare_worker(state: Any, settings: Settings, store: Store) -> FirewallService:
    """Build a served worker's firewall before it takes traffic, then freeze the start-up heap.

    Freezing moves every object alive now (modules, the policy, the index's small parts) out of the
    collector's sight: a full collection would otherwise walk a quarter of a million start-up
    objects, a pause of 100 ms and more in the middle of decisions, for nothing (they live as long
    as the process)."""
    svc = service_for(state, settings, store)
    gc.collect()
    gc.freeze()
    # The worker's background threads (decision-log flush, index poll, key re-checks) hold the
    # interpreter for milliseconds of Python at a time; the event loop waking for a request waits
    # for it up to the switch interval (5 ms by default) each time. A short interval bounds that wait.
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
    from forewarn.firewall.stalls import start_if_requested

    monitor = svc.stall_monitor = start_if_requested()
    if monitor is not None:  # the periodic jobs of a worker, timed to be matched with the stalls
        if svc.decision_log is not None:
            svc.decision_log.flush = monitor.time_job("decision-log flush", svc.decision_log.flush)  # type: ignore[method-assign]
        svc.index.refresh = monitor.time_job("index refresh", svc.index.refresh)  # type: ignore[method-assign]
    return svc


def publisher_main(data_dir: str, policy_path: str | None, directory: str) -> None:
    """The publisher process of `forewarn firewall serve`: builds snapshots from the store and
    publishes them to ``directory`` until SIGTERM, or until its parent is gone; it also prunes the
    decision log by the policy's retention (once per node, not once per worker). (Ctrl-C reaches
    the whole process group: the parent stops the workers first, then this process.)"""
    import signal

    from forewarn.config import load_settings
    from forewarn.store import open_store

    # Background work: it must never take a core from the workers answering calls (it would,
    # inherited from a real-time parent, or at equal priority on a busy machine).
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.nice(10)
    stop = threading.Event()
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def should_stop(timeout: float) -> bool:
        return stop.wait(timeout) or os.getppid() != parent

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    settings = load_settings(data_dir)
    store = open_store(settings, upgrade=False)
    try:
        policy = load_policy(settings.country, policy_path)
        pruner = RetentionPruner(store, policy)
        pruner.start()
        try:
            run_publisher(SnapshotBuilder(store, policy), Path(directory), policy.refresh_s, should_stop)
        finally:
            pruner.stop()
    finally:
        store.close()
