"""One small data-access function per console panel.

Each function takes a connection and returns plain records for one page or panel: the alert
queue and its triage, a victim's timeline, a case, a number's profile with its call-graph
neighbourhood, cross-border flows, officer tasks, firewall decisions and appeals, federation
status and the audit trail. Data of other capabilities is read through their modules when they
are installed; otherwise the panel gets a :class:`Missing` saying which capability is absent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, case, func, literal, or_, select, update

from forewarn.model.indicators import (
    TLP,
    Indicator,
    IndicatorType,
    InvalidIndicator,
    normalise_indicator,
    utcnow,
)
from forewarn.model.records import Alert, AlertStatus, Case, Signal, Warning
from forewarn.publishing.capabilities import optional
from forewarn.store import audit
from forewarn.store import repository as repo
from forewarn.store import schema as t
from forewarn.store.db import utc
from forewarn.web.svg import Flow, Graph, GraphEdge, GraphNode


class PanelError(ValueError):
    """A console action cannot be done; the message says why (shown to the user)."""


@dataclass(frozen=True)
class Missing:
    """A panel whose capability is not installed on this node."""

    capability: str
    reason: str
    installed: bool = False  # installed, but it keeps no records of this kind


def _table(module: str, name: str) -> Table | Missing:
    cap = optional(module, name)
    table = cap.attr(name)
    if isinstance(table, Table):
        return table
    return Missing(module.rsplit(".", 2)[-2], cap.reason or f"{module}.{name} not found")


def _exists(conn: Connection, table: Table) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table(table.name)


# --- alert queue and triage --------------------------------------------------------------------------

TRIAGE = {"acknowledge": AlertStatus.ACKNOWLEDGED, "dismiss": AlertStatus.DISMISSED,
          "escalate": AlertStatus.ESCALATED}
FINAL = {AlertStatus.CLOSED, AlertStatus.DISMISSED}


@dataclass
class AlertFilters:
    status: str | None = "open"
    role: str | None = None
    scam_type: str | None = None
    centre_id: str | None = None
    min_score: float | None = None
    subject: str | None = None


def _alert_from(row: Any) -> Alert:
    return Alert.model_validate({**row, "created_at": utc(row["created_at"]), "updated_at": utc(row["updated_at"])})


def alert_queue(conn: Connection, filters: AlertFilters, *, limit: int = 200) -> list[Alert]:
    """Alerts matching the filters, highest score first, newest first within a score."""
    a = t.alerts.c
    stmt = select(t.alerts)
    if filters.status and filters.status != "all":
        stmt = stmt.where(a.status == filters.status)
    for column, value in ((a.role, filters.role), (a.scam_type, filters.scam_type),
                          (a.centre_id, filters.centre_id), (a.subject, filters.subject)):
        if value:
            stmt = stmt.where(column == value)
    if filters.min_score is not None:
        stmt = stmt.where(a.score >= filters.min_score)
    rows = conn.execute(stmt.order_by(a.score.desc(), a.created_at.desc()).limit(limit)).mappings()
    return [_alert_from(r) for r in rows]


def alert_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(t.alerts.c.status, func.count()).group_by(t.alerts.c.status))
    return {status: int(n) for status, n in rows}


def alert_filter_choices(conn: Connection) -> dict[str, list[str]]:
    a = t.alerts.c
    scam_types = [v for (v,) in conn.execute(select(a.scam_type).where(a.scam_type.is_not(None)).distinct()) if v]
    centres = [v for (v,) in conn.execute(select(a.centre_id).where(a.centre_id.is_not(None)).distinct()) if v]
    return {"scam_types": sorted(scam_types), "centres": sorted(centres)}


def triage_alert(conn: Connection, alert_id: str, action: str, actor: str, note: str | None = None) -> Alert:
    """Acknowledge, dismiss or escalate an alert, audit-logged in the same transaction.

    Escalating moves the alert to the parent of its centre (when it has one), so the level above
    sees it in its queue.
    """
    status = TRIAGE.get(action)
    if status is None:
        raise PanelError(f"unknown action {action!r}; use acknowledge, dismiss or escalate")
    alert = repo.get_alert(conn, alert_id)
    if alert is None:
        raise PanelError(f"no alert {alert_id!r}")
    if alert.status in FINAL:
        raise PanelError(f"alert {alert_id} is already {alert.status.value}")
    if alert.status == status:
        raise PanelError(f"alert {alert_id} is already {status.value}")
    new_centre = None
    if status is AlertStatus.ESCALATED and alert.centre_id:
        centres = {c.centre_id: c for c in repo.list_centres(conn)}
        current = centres.get(alert.centre_id)
        if current is not None and current.parent_id:
            new_centre = current.parent_id
    repo.set_alert_status(conn, alert_id, status, centre_id=new_centre)
    audit.append(conn, actor, f"alert.{action}", alert_id,
                 {"from": alert.status.value, "to": status.value, "centre_id": new_centre or alert.centre_id,
                  "note": (note or "")[:500] or None})
    updated = repo.get_alert(conn, alert_id)
    assert updated is not None
    return updated


# --- victim timeline ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # call_in, call_out, message_in, message_out, payment, report, signal, alert, warning, risk, task
    summary: str
    ref: str | None = None
    severity: str = "info"  # info, notice, danger


def _event_summary(kind: str, payload: dict[str, Any], number: str) -> tuple[str, str]:
    if kind == "call":
        if payload.get("callee") == number:
            return "call_in", f"call from {payload.get('caller')} ({payload.get('caller_country') or '?'}), " \
                              f"{float(payload.get('duration_s') or 0):.0f} s"
        return "call_out", f"call to {payload.get('callee')}, {float(payload.get('duration_s') or 0):.0f} s"
    if kind == "message":
        if payload.get("recipient") == number:
            return "message_in", f"{payload.get('channel', 'sms')} from {payload.get('sender')}"
        return "message_out", f"{payload.get('channel', 'sms')} to {payload.get('recipient')}"
    if kind == "payment":
        return "payment", f"payment {payload.get('amount')} {payload.get('currency')} to {payload.get('payee_account')}" \
                          f"{' (new payee)' if payload.get('new_payee') else ''}"
    if kind == "report":
        return "report", f"citizen report: {payload.get('indicator_type')} {payload.get('indicator_value')} " \
                         f"({payload.get('verdict')}{', ' + payload['scam_type'] if payload.get('scam_type') else ''})"
    if kind == "signal":
        return "signal", f"{payload.get('provider')} signal {payload.get('signal_type')}"
    return kind, kind


def victim_timeline(conn: Connection, number: str, *, limit: int = 300) -> list[TimelineItem]:
    """Everything the node knows about one subscriber, oldest first: contacts, payments, provider
    signals, detector signals, alerts, warnings, forewarning's risk steps and officer tasks."""
    items: list[TimelineItem] = []
    e = t.events.c
    rows = conn.execute(select(e.event_id, e.kind, e.occurred_at, e.payload)
                        .where(or_(e.subject == number, e.counterpart == number))
                        .order_by(e.occurred_at.desc()).limit(limit))
    for row in rows:
        kind, summary = _event_summary(row.kind, row.payload or {}, number)
        items.append(TimelineItem(utc(row.occurred_at), kind, summary, row.event_id))  # type: ignore[arg-type]
    for sig in repo.list_signals(conn, subject=number, limit=100):
        items.append(TimelineItem(sig.observed_at, "signal", f"{sig.detector}: {', '.join(sig.reasons[:4])} "
                                  f"(score {sig.score:.2f})", sig.signal_id, "notice"))
    for alert in repo.list_alerts(conn, subject=number, limit=100):
        items.append(TimelineItem(alert.created_at, "alert", f"{alert.role.value} alert {alert.scam_type or ''} "
                                  f"score {alert.score:.2f} — {alert.status.value}", alert.alert_id, "danger"))
    for warning in repo.list_warnings(conn, recipient=number, limit=100):
        items.append(TimelineItem(warning.created_at, "warning", f"warning via {warning.channel} ({warning.language}) "
                                  f"— {warning.status.value}", warning.verification_code, "notice"))
    timeline = _table("forewarn.forewarning.tables", "fw_timeline")
    if isinstance(timeline, Table) and _exists(conn, timeline):
        for step in conn.execute(select(timeline).where(timeline.c.subscriber == number)
                                 .order_by(timeline.c.at.desc()).limit(limit)).mappings():
            items.append(TimelineItem(utc(step["at"]), "risk", f"risk step {step['reason']} (+{step['weight']:.2f})"  # type: ignore[arg-type]
                                      f"{' via ' + step['counterpart'] if step['counterpart'] else ''}",
                                      step["event_id"], "notice"))
    tasks = _table("forewarn.centres.tables", "centre_tasks")
    if isinstance(tasks, Table) and _exists(conn, tasks):
        for task in conn.execute(select(tasks).where(tasks.c.subscriber == number)).mappings():
            items.append(TimelineItem(utc(task["created_at"]), "task", f"officer task {task['kind']} at "  # type: ignore[arg-type]
                                      f"{task['centre_id']} — {task['status']}", task["task_id"], "notice"))
    items.sort(key=lambda i: i.at)
    return items[-limit:]


# --- cases ----------------------------------------------------------------------------------------

@dataclass
class CaseView:
    case: Case
    alerts: list[Alert]
    warnings: list[Warning]
    outcomes: list[dict[str, Any]] | Missing


def list_cases(conn: Connection, status: str | None = None, limit: int = 200) -> list[Case]:
    return repo.list_cases(conn, status=status or None, limit=limit)


def case_view(conn: Connection, case_id: str) -> CaseView | None:
    found = repo.get_case(conn, case_id)
    if found is None:
        return None
    alerts = [a for a in (repo.get_alert(conn, i) for i in found.alert_ids[:200]) if a is not None]
    warnings = [w for v in found.victims[:50] for w in repo.list_warnings(conn, recipient=v, limit=20)]
    outcomes_table = _table("forewarn.centres.tables", "case_outcomes")
    outcomes: list[dict[str, Any]] | Missing
    if isinstance(outcomes_table, Missing):
        outcomes = outcomes_table
    else:
        outcomes = [dict(r) for r in conn.execute(select(outcomes_table).where(outcomes_table.c.case_id == case_id)
                                                  .order_by(outcomes_table.c.recorded_at)).mappings()]
    return CaseView(found, alerts, warnings, outcomes)


# --- entity profile and call graph ------------------------------------------------------------------

def parse_entity(raw: str, default_region: str | None) -> tuple[IndicatorType, str]:
    """Guess what was typed: a phone number first, then a URL, an account or a wallet."""
    text = (raw or "").strip()
    if not text:
        raise PanelError("type a number, URL, account or wallet")
    order = [IndicatorType.PHONE, IndicatorType.CRYPTO_WALLET, IndicatorType.URL if "/" in text or "." in text
             else IndicatorType.BANK_ACCOUNT, IndicatorType.BANK_ACCOUNT, IndicatorType.SENDER_ID]
    for kind in order:
        try:
            return kind, normalise_indicator(kind, text, default_region)
        except InvalidIndicator:
            continue
    raise PanelError(f"{text[:60]!r} is not a number, URL, account or wallet this node understands")


def flagged_numbers(conn: Connection) -> set[str]:
    """Numbers the node holds as fraudulent: phone indicators and suspects of live alerts."""
    ind, a = t.indicators.c, t.alerts.c
    found = set(conn.execute(select(ind.value).where(ind.type == "phone", ind.revoked.is_(False))).scalars())
    found.update(conn.execute(select(a.subject).where(a.role == "suspect", a.subject_type == "phone",
                                                      a.status != "dismissed")).scalars())
    return found


def victim_numbers(conn: Connection) -> set[str]:
    a = t.alerts.c
    found = set(conn.execute(select(a.subject).where(a.role == "victim", a.status != "dismissed")).scalars())
    found.update(conn.execute(select(t.warnings_.c.recipient)).scalars())
    return found


def _contacts(conn: Connection, number: str, since: datetime | None, limit: int) -> Counter[str]:
    e = t.events.c
    counts: Counter[str] = Counter()
    base = [e.kind == "call"] + ([e.occurred_at >= since] if since else [])
    out = conn.execute(select(e.counterpart, func.count()).where(e.subject == number, *base)
                       .group_by(e.counterpart).order_by(func.count().desc()).limit(limit))
    inc = conn.execute(select(e.subject, func.count()).where(e.counterpart == number, *base)
                       .group_by(e.subject).order_by(func.count().desc()).limit(limit))
    for other, n in list(out) + list(inc):
        if other and other != number:
            counts[other] += int(n)
    return counts


def call_neighbourhood(conn: Connection, number: str, *, first_hop: int = 16, second_hop: int = 3,
                       days: int | None = 90) -> Graph:
    """The number's strongest call contacts and theirs, from stored call events."""
    since = utcnow() - timedelta(days=days) if days else None
    flagged, victims = flagged_numbers(conn), victim_numbers(conn)

    def kind_of(n: str) -> str:
        return "flagged" if n in flagged else ("victim" if n in victims else "plain")

    graph = Graph(centre=number)
    first = _contacts(conn, number, since, first_hop * 4)
    graph.truncated = len(first) > first_hop
    placed = {number}
    for other, calls in first.most_common(first_hop):
        graph.nodes.append(GraphNode(other, other, kind_of(other), 1, number, calls))
        graph.edges.append(GraphEdge(number, other, calls, number in flagged or other in flagged))
        placed.add(other)
    for node in list(graph.nodes):
        for other, calls in _contacts(conn, node.id, since, second_hop * 4).most_common(second_hop + 1):
            if other in placed:
                if other != number and not any({e.source, e.target} == {node.id, other} for e in graph.edges):
                    graph.edges.append(GraphEdge(node.id, other, calls, node.id in flagged or other in flagged))
                continue
            if sum(1 for n in graph.nodes if n.parent == node.id and n.hop == 2) >= second_hop:
                break
            graph.nodes.append(GraphNode(other, other, kind_of(other), 2, node.id, calls))
            graph.edges.append(GraphEdge(node.id, other, calls, node.id in flagged or other in flagged))
            placed.add(other)
    return graph


@dataclass
class EntityProfile:
    kind: IndicatorType
    value: str
    indicators: list[Indicator]
    hidden_indicators: int
    signals: list[Signal]
    alerts: list[Alert]
    calls_made: int = 0
    calls_received: int = 0
    distinct_callees: int = 0
    countries: list[str] = field(default_factory=list)
    graph: Graph | None = None


def entity_profile(conn: Connection, raw: str, *, default_region: str | None, max_tlp: TLP = TLP.RED) -> EntityProfile:
    """Indicators (up to ``max_tlp``), signals, alerts, call volumes and the call graph of one entity."""
    kind, value = parse_entity(raw, default_region)
    every = repo.list_indicators(conn, value=value, limit=200)
    shown = [i for i in every if i.tlp.rank <= max_tlp.rank]
    profile = EntityProfile(kind, value, shown, len(every) - len(shown),
                            repo.list_signals(conn, subject=value, limit=50),
                            repo.list_alerts(conn, subject=value, limit=50))
    if kind is IndicatorType.PHONE:
        e = t.events.c
        made = conn.execute(select(func.count(), func.count(e.counterpart.distinct()))
                            .where(e.kind == "call", e.subject == value)).one()
        profile.calls_made, profile.distinct_callees = int(made[0]), int(made[1])
        profile.calls_received = int(conn.execute(select(func.count()).where(
            e.kind == "call", e.counterpart == value)).scalar_one())
        callee_country = e.payload["callee_country"].as_string()
        profile.countries = sorted(c for (c,) in conn.execute(
            select(callee_country).where(e.kind == "call", e.subject == value).distinct().limit(50)) if c)
        profile.graph = call_neighbourhood(conn, value)
    return profile


# --- cross-border flows ------------------------------------------------------------------------------

def cross_border_flows(conn: Connection, *, days: int = 30, now: datetime | None = None,
                       include_domestic: bool = False) -> list[Flow]:
    """Calls between countries (caller_country → callee_country) with the share from flagged numbers."""
    end = utc(now) or utcnow()
    e = t.events.c
    src, dst = e.payload["caller_country"].as_string(), e.payload["callee_country"].as_string()
    ind, a = t.indicators.c, t.alerts.c
    flagged = or_(e.subject.in_(select(ind.value).where(ind.type == "phone", ind.revoked.is_(False))),
                  e.subject.in_(select(a.subject).where(a.role == "suspect", a.status != "dismissed")))
    fraud = func.sum(case((flagged, literal(1)), else_=literal(0)))
    stmt = (select(src.label("src"), dst.label("dst"), func.count().label("calls"), fraud.label("fraud"))
            .where(e.kind == "call", e.occurred_at >= end - timedelta(days=days), e.occurred_at < end)
            .group_by(src, dst))
    flows = []
    for row in conn.execute(stmt):
        if not row.src or not row.dst or (row.src == row.dst and not include_domestic):
            continue
        flows.append(Flow(row.src, row.dst, int(row.calls), int(row.fraud or 0)))
    return sorted(flows, key=lambda f: -f.calls)


# --- officer tasks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskRow:
    task_id: str
    kind: str
    subscriber: str
    centre_id: str
    officer_id: str | None
    status: str
    priority: int
    due_at: datetime
    created_at: datetime
    overdue: bool
    minutes_left: float


def officer_tasks(conn: Connection, *, centre_id: str | None = None, officer_id: str | None = None,
                  include_done: bool = False, now: datetime | None = None, limit: int = 300) -> list[TaskRow] | Missing:
    """Officer tasks by deadline (centres capability), overdue ones flagged."""
    cap = optional("forewarn.centres.tasks", "list_tasks")
    lister = cap.attr("list_tasks")
    if not callable(lister):
        return Missing("centres", cap.reason or "officer tasks are not available")
    tasks = _table("forewarn.centres.tables", "centre_tasks")
    if isinstance(tasks, Missing) or not _exists(conn, tasks):
        return Missing("centres", "the centres tables are not migrated on this store")
    at = utc(now) or utcnow()
    out = []
    for row in lister(conn, centre_id=centre_id, limit=limit):
        if row.get("completed_at") is not None and not include_done:
            continue
        if officer_id and row.get("officer_id") != officer_id:
            continue
        due = utc(row["due_at"])
        assert due is not None
        out.append(TaskRow(row["task_id"], row["kind"], row["subscriber"], row["centre_id"], row.get("officer_id"),
                           row["status"], int(row["priority"]), due, utc(row["created_at"]),  # type: ignore[arg-type]
                           row.get("completed_at") is None and due < at, (due - at).total_seconds() / 60))
    out.sort(key=lambda task: task.due_at)  # by deadline, the most urgent first
    return out


# --- firewall decisions and appeals ------------------------------------------------------------------

def firewall_decisions(conn: Connection, *, limit: int = 100, action: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]] | Missing:
    """Recent marks and blocks of the firewall, newest first, optionally of one action (mark, block)
    and kind (call, sms). Raises PanelError for an unknown filter value."""
    cap = optional("forewarn.firewall.decisions", "recent_decisions")
    recent = cap.attr("recent_decisions")
    if not callable(recent):
        installed = optional("forewarn.firewall.engine").installed
        return Missing("firewall", "the firewall answers each call in memory and keeps no log of its decisions "
                                   f"({cap.reason or 'no recent_decisions function'})", installed=installed)
    try:
        found = recent(conn, limit=limit, action=action or None, kind=kind or None)
    except ValueError as exc:
        raise PanelError(str(exc)) from exc
    return [d if isinstance(d, dict) else dict(vars(d)) for d in found]


def firewall_decision_counts(conn: Connection, *, hours: int = 24) -> dict[str, dict[str, int]] | Missing:
    """Allow, mark and block counts per kind (call, sms) over the last ``hours``."""
    cap = optional("forewarn.firewall.decisions", "decision_counts")
    counts = cap.attr("decision_counts")
    if not callable(counts):
        return Missing("firewall", cap.reason or "the firewall keeps no decision counts")
    return counts(conn, since=utcnow() - timedelta(hours=hours))  # type: ignore[no-any-return]


def appeal_queue(conn: Connection, *, status: str = "pending", limit: int = 100) -> list[dict[str, Any]] | Missing:
    """Appeals against firewall labels (reputation capability)."""
    cap = optional("forewarn.reputation.appeals", "list_appeals")
    lister = cap.attr("list_appeals")
    if not callable(lister):
        return Missing("reputation", cap.reason or "appeals are not available")
    return [a if isinstance(a, dict) else dict(vars(a)) for a in lister(conn, status=status, limit=limit)]


APPEAL_DECISIONS = {"uphold": "upheld", "reject": "rejected"}


def decide_appeal(conn: Connection, appeal_id: str, decision: str, actor: str, reason: str | None = None) -> Any:
    """Uphold (lift the mark) or reject an appeal through the reputation capability, with a reason."""
    cap = optional("forewarn.reputation.appeals", "decide_appeal")
    decide = cap.attr("decide_appeal")
    if not callable(decide):
        raise PanelError(cap.reason or "appeals are not available on this node")
    if decision not in APPEAL_DECISIONS:
        raise PanelError("decide an appeal with uphold or reject")
    if not reason or not reason.strip():
        raise PanelError("give the reason for the decision; the appellant is told it")
    return decide(conn, appeal_id, APPEAL_DECISIONS[decision], reason, actor=actor)


# --- federation ----------------------------------------------------------------------------------------

@dataclass
class FederationStatus:
    partners: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    shared_total: int
    received_by_status: dict[str, int]


def _configured_partners(settings: Any) -> dict[str, dict[str, Any]]:
    """Partners named in the node's federation policy (empty without one)."""
    node = optional("forewarn.federation.node", "policy_path")
    policy = optional("forewarn.federation.policy", "load_policy")
    if settings is None or not node.installed or not policy.installed:
        return {}
    path = node.attr("policy_path")(settings)  # type: ignore[operator]
    if not path.exists():
        return {}
    try:
        loaded = policy.attr("load_policy")(path)  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - a broken policy file is federation's to report; show the data alone
        return {}
    return {name.upper(): {"url": partner.url, "pinned_key": bool(partner.public_key)}
            for name, partner in loaded.partners.items()}


def federation_status(conn: Connection, *, settings: Any = None, pending_limit: int = 100) -> FederationStatus | Missing:
    """Partners (from the policy and from what was exchanged) with what was shared with and received
    from each, and the approval queue (through the federation library)."""
    outbox = _table("forewarn.federation.tables", "federation_outbox")
    inbox = _table("forewarn.federation.tables", "federation_inbox")
    cursors = _table("forewarn.federation.tables", "federation_cursors")
    queue = optional("forewarn.federation.inbox", "list_queue")
    for table in (outbox, inbox, cursors):
        if isinstance(table, Missing):
            return table
    if not queue.installed:
        return Missing("federation", queue.reason or "the federation inbox is not available")
    assert isinstance(outbox, Table) and isinstance(inbox, Table) and isinstance(cursors, Table)
    if not _exists(conn, inbox):
        return Missing("federation", "the federation tables are not migrated on this store")

    def blank() -> dict[str, Any]:
        return {"received": 0, "pending": 0, "approved": 0, "rejected": 0, "last_received": None,
                "last_pull": None, "last_push": None, "shared": 0, "url": None}

    partners: dict[str, dict[str, Any]] = defaultdict(blank)
    for name, conf in _configured_partners(settings).items():
        partners[name].update(conf)
    for partner, status, n, last in conn.execute(select(inbox.c.partner, inbox.c.status, func.count(),
                                                        func.max(inbox.c.received_at))
                                                 .group_by(inbox.c.partner, inbox.c.status)):
        entry = partners[partner]
        entry["received"] += int(n)
        key = "approved" if status in ("approved", "auto_approved") else status
        if key in entry:
            entry[key] += int(n)
        last = utc(last)
        if last and (entry["last_received"] is None or last > entry["last_received"]):
            entry["last_received"] = last
    for partner, direction, updated in conn.execute(select(cursors.c.partner, cursors.c.direction,
                                                           cursors.c.updated_at)):
        partners[partner][f"last_{direction}"] = utc(updated)
    for partner, n in conn.execute(select(outbox.c.partner, func.count()).where(outbox.c.partner.is_not(None))
                                   .group_by(outbox.c.partner)):
        partners[partner]["shared"] = int(n)  # sightings addressed to that partner alone
    shared_total = int(conn.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.kind == "indicator")).scalar_one())
    pending = queue.attr("list_queue")(conn, status="pending", limit=pending_limit)  # type: ignore[operator]
    by_status = {s: int(n) for s, n in conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status))}
    rows = [{"partner": p, **v} for p, v in sorted(partners.items())]
    return FederationStatus(rows, list(pending), shared_total, by_status)


# --- audit trail -----------------------------------------------------------------------------------------

def recent_audit(conn: Connection, *, limit: int = 100, actor_prefix: str | None = None) -> list[dict[str, Any]]:
    log = t.audit_log.c
    stmt = select(log.seq, log.at, log.actor, log.action, log.target)
    if actor_prefix:
        stmt = stmt.where(log.actor.startswith(actor_prefix))
    return [dict(r) for r in conn.execute(stmt.order_by(log.seq.desc()).limit(limit)).mappings()]


def mark_alerts_seen(conn: Connection, alert_ids: list[str]) -> int:  # pragma: no cover - reserved
    return int(conn.execute(update(t.alerts).where(and_(t.alerts.c.alert_id.in_(alert_ids)))
                            .values(updated_at=utcnow())).rowcount or 0)
