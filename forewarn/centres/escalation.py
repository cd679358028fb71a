"""One escalation tick: tasks not acknowledged by their deadline move up the hierarchy (city →
province → national), and warnings not delivered by theirs become call-back tasks. Run by
``forewarn centres escalate`` and by the API's background loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from forewarn.centres.routing import Router
from forewarn.centres.tasks import escalate_due
from forewarn.model.indicators import utcnow
from forewarn.store import Store, audit


@dataclass
class TickReport:
    escalated: int
    overdue: int
    callbacks_for_undelivered: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tick(store: Store, policy: object | None = None, now: datetime | None = None) -> TickReport:
    from forewarn.forewarning.interventions import undelivered_warnings_to_callbacks
    from forewarn.forewarning.policy import Policy

    pol = policy if isinstance(policy, Policy) else Policy.load()
    now = now or utcnow()
    callbacks = undelivered_warnings_to_callbacks(store, pol, now)
    with store.begin() as conn:
        router = Router.from_store(conn, store.settings.country if store.settings else None)
        moved = escalate_due(conn, router, minutes_per_level=pol.escalation.minutes_per_level, now=now)
        for m in moved:
            audit.append(conn, "system:centres", "task.escalate" if m.to_centre else "task.overdue", m.task_id,
                         {"from": m.from_centre, "to": m.to_centre, "level": m.level})
    return TickReport(escalated=sum(1 for m in moved if m.to_centre), overdue=sum(1 for m in moved if not m.to_centre),
                      callbacks_for_undelivered=callbacks)
