"""A running firewall for one node: the policy, a reputation index refreshed in the background from
the store, guarded live counters (Redis when ``FOREWARN_REDIS_URL`` is set, so that several worker
processes share them; in-process otherwise), content screening when installed, and subscribers'
languages. Each worker process builds its own service and keeps its own index snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select

from forewarn.config import Settings
from forewarn.firewall.counters import GuardedCounters, LiveCounterSource, describe, make_counters
from forewarn.firewall.decisions import DecisionLog
from forewarn.firewall.engine import Firewall
from forewarn.firewall.policy import Policy, load_policy
from forewarn.firewall.screening import ContentScreener, default_screener
from forewarn.model.indicators import utcnow
from forewarn.reputation.index import ReputationIndex, ReputationSnapshot
from forewarn.reputation.loader import load_snapshot, store_fingerprint
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


class FirewallService:
    """Owns the index refresher and the :class:`Firewall` built on it."""

    def __init__(self, store: Store, policy: Policy, *, counters: LiveCounterSource | None = _UNSET,
                 screener: ContentScreener | None = _UNSET, redis_url: str | None = None,
                 start_refresher: bool = True, counters_namespace: str = "fw:attempts",
                 decision_log: DecisionLog | None = _UNSET) -> None:
        self.store = store
        self.policy = policy
        if counters is _UNSET:
            counters = (make_counters(redis_url, policy.counters_timeout_ms, counters_namespace)
                        if policy.counters_enabled else None)
        if screener is _UNSET:
            screener = default_screener()
        self.counters_source = counters
        guarded = (GuardedCounters(counters, policy.counters_cache_s, policy.counters_failure_backoff_s)
                   if counters is not None else None)
        self._fingerprint: tuple[Any, ...] = ()
        self.index = ReputationIndex(self._load, refresh_s=policy.refresh_s, decay=policy.reputation.decay)
        self.firewall = Firewall(self.index, policy, guarded, screener)
        if decision_log is _UNSET:
            decision_log = DecisionLog(store)
        self.decision_log = decision_log
        self.firewall.decision_log = decision_log
        self.index.refresh()
        if start_refresher:
            self.index.start()
            if decision_log is not None:
                decision_log.start()

    def _load(self) -> ReputationSnapshot:
        """A new snapshot when the store changed, else the current one; a full rebuild at least every
        ten refresh intervals anyway (expiries and appeal deadlines pass without any write)."""
        with self.store.engine.connect() as conn:
            fingerprint = store_fingerprint(conn)
            current = self.index.snapshot
            age = time.time() - current.built_at
            if (fingerprint == self._fingerprint and self.index.refreshes
                    and age < max(10 * self.policy.refresh_s, 60.0)):
                return current
            snap = load_snapshot(conn, self.policy.reputation, utcnow())
        self._fingerprint = fingerprint
        # swapped whole, like the snapshot
        self.firewall.languages, self.firewall.regions = load_subscribers(self.store)
        return snap

    def refresh(self) -> ReputationSnapshot:
        """Rebuild the snapshot now (e.g. right after an appeal decision)."""
        return self.index.refresh()

    def stats(self) -> dict[str, Any]:
        snap = self.index.snapshot
        return {"indicators": len(snap), "index_bytes": snap.nbytes,
                "built_at": datetime.fromtimestamp(snap.built_at).astimezone().isoformat(),
                "refreshes": self.index.refreshes, "last_refresh_error": self.index.last_error,
                "allow_list_entries": len(snap.allow.numbers) + sum(len(v) for v in snap.allow.personal.values()),
                "counters": describe(self.counters_source),
                "screening": describe(self.firewall.screener), "policy": list(self.policy.source),
                "country": self.policy.country, "worker_pid": os.getpid(),
                "decision_log": self.decision_log.stats() if self.decision_log is not None else None}

    def flush(self) -> int:
        """Write the buffered decisions and counts to the store now."""
        return self.decision_log.flush() if self.decision_log is not None else 0

    def close(self) -> None:
        self.index.stop()
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
                svc = FirewallService(store, policy, redis_url=settings.redis_url,
                                      counters_namespace=os.environ.get("FOREWARN_FIREWALL_NAMESPACE", "fw:attempts"))
                state.firewall = svc
    return svc  # type: ignore[no-any-return]
