"""Tiered interventions: what happens when a victim's risk reaches a tier of the policy.

1. ``warning`` — a signed, link-free SMS in the victim's language with a verification code,
   queued in the outbox; if it is not delivered within the tier's deadline, the escalation tick
   opens a call-back task instead (:func:`undelivered_warnings_to_callbacks`).
2. ``callback`` — a task for an officer of the responsible local centre (and an e-mail to the
   centre's mailbox when one is configured).
3. ``payment_hold`` — a task tracking a hold request, and the request itself: a signed webhook to
   the victim's bank when the policy names the bank's endpoint.
4. ``visit`` — an in-person visit task.

Before them, for risk from contacts alone (scammers rang or texted the person, who did not engage):
``mark`` — no message and no task, so that people who are merely on a scammer's list are not
trained to ignore warnings; the firewall labels the flagged numbers' calls and SMS, and the mark
is kept in the risk state (and the audit log) for the officer who looks at the person later.

All of one firing — alert, case, warning, tasks, outbox messages, timeline rows, risk state and
the audit entry — is written in one transaction, so a crash leaves either all of it or none.
Identities derive from the victim, the tier and the triggering event, so a replay adds nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from forewarn.centres import cases as cs
from forewarn.centres import tasks as tk
from forewarn.centres.config import centre_settings
from forewarn.centres.routing import Router
from forewarn.forewarning import outbox
from forewarn.forewarning import tables as ft
from forewarn.forewarning.policy import Policy, Tier
from forewarn.forewarning.signing import Signer, canonical, new_code, warning_payload
from forewarn.forewarning.templates import Templates, default_templates
from forewarn.forewarning.timeline import Entry, VictimTimeline
from forewarn.model.indicators import utcnow
from forewarn.model.phone import country_of
from forewarn.model.records import Alert, AlertRole, AlertStatus, Centre, CentreLevel, SubjectType, Warning
from forewarn.store import Store, audit
from forewarn.store import repository as repo
from forewarn.store import schema as t

if TYPE_CHECKING:
    from forewarn.forewarning.engine import Fired, Profile

ACTOR = "system:forewarning"


def _stable(prefix: str, *parts: str | None) -> str:
    from forewarn.forewarning.engine import stable_id

    return stable_id(prefix, *(p or "" for p in parts))


class Interventions:
    def __init__(self, store: Store, policy: Policy, *, issuer: str | None = None, signer: Signer | None = None,
                 templates: Templates | None = None) -> None:
        self.store = store
        self.policy = policy
        settings = store.settings
        self.issuer = issuer or (settings.country if settings else "XX")
        if signer is None:
            if settings is None:
                raise ValueError("a store without settings needs an explicit signer")
            signer = Signer.load_or_create(settings.data_dir, self.issuer)
        self.signer = signer
        self.templates = templates or default_templates()
        with store.begin() as conn:
            self.signer.register(conn)
            self.router = Router.from_store(conn, self.issuer)
            self.centre_settings = centre_settings(conn)
            self.case_index = cs.CaseIndex.from_store(conn)
        self._entries: dict[str, list[Entry]] = {}
        self._touched: set[str] = set()
        self.skipped_existing = 0

    # --- persistence of timelines --------------------------------------------------------------

    def buffer_entry(self, victim: str, entry: Entry) -> None:
        self._entries.setdefault(victim, []).append(entry)
        self._touched.add(victim)

    def _timeline_rows(self, victim: str) -> list[dict[str, Any]]:
        return [{"subscriber": victim, "at": e.at, "reason": e.reason, "weight": round(e.weight, 4),
                 "event_id": e.event_id, "counterpart": e.counterpart, "scam_type": e.scam_type, "retro": e.retro}
                for e in self._entries.pop(victim, [])]

    def _state_row(self, tl: VictimTimeline, at: datetime) -> dict[str, Any]:
        return {"subscriber": tl.subscriber, "score": round(tl.score(at, self.policy.risk), 4),
                "reasons": tl.reasons(at, self.policy.risk)[:12], "tiers_fired": sorted(tl.tiers_fired),
                "alert_id": tl.alert_id, "case_id": tl.case_id, "centre_id": tl.centre_id,
                "scam_type": tl.scam_type(), "first_contact_at": tl.first_contact_at,
                "decisive_at": tl.decisive_at, "updated_at": utcnow()}

    def _record_firing(self, conn: Connection, tl: VictimTimeline, at: datetime) -> None:
        """After tiers fired (or a mark) at ``at``: store the victim's pending timeline rows and risk state."""
        tl.last_fired_at = at
        rows = self._timeline_rows(tl.subscriber)
        if rows:
            conn.execute(ft.fw_timeline.insert(), rows)
        self._touched.discard(tl.subscriber)
        self._save_state(conn, tl, at)

    def _save_state(self, conn: Connection, tl: VictimTimeline, at: datetime) -> None:
        row = self._state_row(tl, at)
        if conn.execute(update(ft.fw_risk_state).where(ft.fw_risk_state.c.subscriber == tl.subscriber)
                        .values(**row)).rowcount == 0:
            conn.execute(ft.fw_risk_state.insert().values(**row))

    def flush(self, timelines: dict[str, VictimTimeline], policy: Policy) -> None:
        """Write buffered timeline entries and the risk state of every touched victim."""
        if not self._touched:
            return
        with self.store.begin() as conn:
            rows: list[dict[str, Any]] = []
            for victim in self._touched:
                rows += self._timeline_rows(victim)
            if rows:
                conn.execute(ft.fw_timeline.insert(), rows)
            for victim in self._touched:
                tl = timelines.get(victim)
                if tl is not None and tl.entries:
                    self._save_state(conn, tl, tl.entries[-1].at)
        self._touched.clear()

    # --- routing and language ------------------------------------------------------------------

    def centre_for(self, victim: str, profile: Profile) -> Centre:
        centre = self.router.route(victim, profile.home_region)
        if centre is None:  # no hierarchy loaded: the node's own national desk
            country = profile.country or country_of(victim) or self.issuer
            centre = Centre(centre_id=country, name=f"{country} national centre", level=CentreLevel.NATIONAL,
                            country=country if len(country) == 2 else "XX")
        return centre

    def hotline_for(self, centre: Centre) -> str:
        for c in self.router.chain(centre.centre_id) or [centre]:
            hot = (self.centre_settings.get(c.centre_id) or {}).get("hotline")
            if hot:
                return str(hot)
        return self.policy.hotline_for(centre.country)

    def language_for(self, victim: str, profile: Profile, centre: Centre) -> str:
        if profile.language:
            return profile.language
        country = profile.country or country_of(victim)
        if country:
            return self.policy.language_for(country)
        return centre.languages[0] if centre.languages else self.policy.language_for(None)

    def ack_minutes(self, tier: Tier, centre: Centre) -> float:
        own = (self.centre_settings.get(centre.centre_id) or {}).get("ack_minutes")
        return float(own) if own else tier.deadline_minutes

    # --- firing --------------------------------------------------------------------------------

    def fire(self, tl: VictimTimeline, tiers: list[Tier], *, score: float, reasons: list[str], at: datetime,
             trigger_event_id: str | None, profile: Profile, arrival: float) -> list[Fired]:
        from forewarn.forewarning.engine import Fired

        victim = tl.subscriber
        if all(tier.action == "mark" for tier in tiers):
            return self._mark(tl, tiers, score=score, reasons=reasons, at=at, trigger_event_id=trigger_event_id,
                              arrival=arrival)
        tiers = [tier for tier in tiers if tier.action != "mark"]
        centre = self.centre_for(victim, profile)
        scam_type = tl.scam_type()
        suspects = tl.counterparts()
        trigger = trigger_event_id or at.isoformat()
        out: list[Fired] = []
        with self.store.begin() as conn:
            first_key = _stable("wrn", victim, str(tiers[0].tier), trigger)
            if tiers[0].action == "warning" and conn.execute(select(t.warnings_.c.warning_id).where(
                    t.warnings_.c.warning_id == first_key)).first():
                # issued by an earlier run over the same data
                self.skipped_existing += 1
                tl.tiers_fired.update(x.tier for x in tiers)
                return []
            now = utcnow()
            if tl.alert_id is None:
                tl.alert_id = _stable("alr", victim, trigger)
                inserted = repo.insert_alerts(conn, [Alert(
                    alert_id=tl.alert_id, role=AlertRole.VICTIM, subject_type=SubjectType.PHONE, subject=victim,
                    score=round(min(score, 1.0), 4), reasons=reasons[:20], centre_id=centre.centre_id,
                    scam_type=scam_type, created_at=now, updated_at=now)])
                if inserted:
                    tl.case_id = cs.attach(conn, victim=victim, suspects=suspects,
                                           indicators=[f"phone:{s}" if s.startswith("+") else s for s in suspects],
                                           alert_id=tl.alert_id, centre_id=centre.centre_id, scam_type=scam_type,
                                           index=self.case_index)
            else:
                conn.execute(update(t.alerts).where(t.alerts.c.alert_id == tl.alert_id).values(
                    score=round(min(score, 1.0), 4), reasons=reasons[:20], updated_at=now,
                    status=AlertStatus.ESCALATED.value if max(x.tier for x in tiers) > 1 else AlertStatus.OPEN.value))
            tl.centre_id = centre.centre_id
            if tl.decisive_at is None:
                tl.decisive_at = at
            for tier in tiers:
                fired = Fired(victim, tier.tier, tier.action, score, reasons, trigger_event_id, at, 0.0)
                if tier.action == "warning":
                    fired.warning_id = self._warning(conn, tl, tier, centre, profile, scam_type, at, trigger,
                                                     trigger_event_id, arrival, now)
                else:
                    fired.task_id = self._task(conn, tl, tier, centre, score, reasons, scam_type, suspects, trigger, now)
                tl.tiers_fired.add(tier.tier)
                out.append(fired)
            self._record_firing(conn, tl, at)
            audit.append(conn, ACTOR, "forewarning.intervene", victim, {
                "tiers": [x.tier for x in tiers], "score": round(score, 4), "reasons": reasons[:8],
                "centre_id": centre.centre_id, "alert_id": tl.alert_id, "trigger_event_id": trigger_event_id})
        latency = time.perf_counter() - arrival
        for f in out:
            f.latency_s = latency
        if any(f.warning_id for f in out):
            with self.store.begin() as conn:  # the commit time is the queue time; record it
                for f in out:
                    if f.warning_id:
                        conn.execute(update(ft.fw_warning_meta).where(
                            ft.fw_warning_meta.c.warning_id == f.warning_id).values(latency_s=latency))
        return out

    def _mark(self, tl: VictimTimeline, tiers: list[Tier], *, score: float, reasons: list[str], at: datetime,
              trigger_event_id: str | None, arrival: float) -> list[Fired]:
        """Contacts alone: record the mark (risk state, timeline, audit); no alert, case, message or task."""
        from forewarn.forewarning.engine import Fired

        victim = tl.subscriber
        with self.store.begin() as conn:
            tl.tiers_fired.update(tier.tier for tier in tiers)
            self._record_firing(conn, tl, at)
            audit.append(conn, ACTOR, "forewarning.mark", victim, {
                "tiers": [x.tier for x in tiers], "score": round(score, 4), "reasons": reasons[:8],
                "suspects": tl.counterparts()[:20], "trigger_event_id": trigger_event_id})
        latency = time.perf_counter() - arrival
        return [Fired(victim, tier.tier, tier.action, score, reasons, trigger_event_id, at, latency) for tier in tiers]

    def _warning(self, conn: Connection, tl: VictimTimeline, tier: Tier, centre: Centre, profile: Profile,
                 scam_type: str | None, at: datetime, trigger: str, trigger_event_id: str | None, arrival: float,
                 now: datetime) -> str:
        victim = tl.subscriber
        warning_id = _stable("wrn", victim, str(tier.tier), trigger)
        code = new_code()
        while conn.execute(select(t.warnings_.c.warning_id).where(t.warnings_.c.verification_code == code)).first():
            code = new_code()
        body, lang = self.templates.render(scam_type, self.language_for(victim, profile, centre), code=code,
                                           hotline=self.hotline_for(centre))
        payload = warning_payload(warning_id=warning_id, code=code, issuer=self.issuer, issued_at=now,
                                  recipient=victim, language=lang, scam_type=scam_type, body=body)
        warning = Warning(warning_id=warning_id, recipient=victim, language=lang, channel="sms", scam_type=scam_type,
                          alert_id=tl.alert_id, body=body, verification_code=code,
                          signature=self.signer.sign(payload), decisive_event_at=at, created_at=now)
        repo.insert_warnings(conn, [warning])
        conn.execute(ft.fw_warning_meta.insert().values(
            warning_id=warning_id, subscriber=victim, trigger_event_id=trigger_event_id, trigger_at=at, queued_at=now,
            latency_s=time.perf_counter() - arrival, key_id=self.signer.key_id,
            signed_payload=canonical(payload).decode("utf-8")))
        outbox.enqueue(conn, channel="sms", recipient=victim, body=body, idempotency_key=f"warning:{warning_id}",
                       warning_id=warning_id, max_attempts=self.policy.delivery.max_attempts, now=now,
                       payload={"deadline": (now + timedelta(minutes=tier.deadline_minutes)).isoformat()})
        return warning_id

    def _task(self, conn: Connection, tl: VictimTimeline, tier: Tier, centre: Centre, score: float,
              reasons: list[str], scam_type: str | None, suspects: list[str], trigger: str, now: datetime) -> str | None:
        victim = tl.subscriber
        detail: dict[str, Any] = {"scam_type": scam_type, "suspects": suspects[:20], "tier": tier.tier}
        if tier.action == "payment_hold":
            detail["bank"] = tl.bank_code
        key = f"{tier.action}:{victim}:{trigger}"
        task_id = tk.create_task(conn, kind=tier.action, subscriber=victim, centre=centre,
                                 ack_minutes=self.ack_minutes(tier, centre), idempotency_key=key, score=score,
                                 reasons=reasons[:12], detail=detail, alert_id=tl.alert_id, case_id=tl.case_id, now=now)
        if task_id is None:
            return None
        mailbox = (self.centre_settings.get(centre.centre_id) or {}).get("email")
        if mailbox and tier.action in ("callback", "visit"):
            outbox.enqueue(conn, channel="email", recipient=mailbox, idempotency_key=f"notify:{task_id}",
                           subject=f"[Forewarn] {tier.action} task {task_id} (score {score:.2f})",
                           body=(f"New {tier.action} task {task_id} for subscriber {victim} at {centre.name}.\n"
                                 f"Reasons: {', '.join(reasons[:6])}\nAcknowledge within "
                                 f"{self.ack_minutes(tier, centre):.0f} minutes in the Forewarn console or API."),
                           task_id=task_id, max_attempts=self.policy.delivery.max_attempts, now=now)
        if tier.action == "payment_hold" and tl.bank_code and tl.bank_code in self.policy.banks:
            endpoint = self.policy.banks[tl.bank_code]
            outbox.enqueue(conn, channel="webhook", recipient=endpoint.url, idempotency_key=f"hold:{task_id}",
                           body=f"payment hold request for {victim}", task_id=task_id,
                           max_attempts=self.policy.delivery.max_attempts, now=now,
                           payload={"type": "payment_hold_request", "task_id": task_id, "subscriber": victim,
                                    "bank": tl.bank_code, "score": round(score, 4), "reasons": reasons[:8],
                                    "ack_within_minutes": tier.deadline_minutes, "issuer": self.issuer,
                                    "hmac_secret_env": endpoint.secret_env})
        return task_id


def undelivered_warnings_to_callbacks(store: Store, policy: Policy, now: datetime | None = None) -> int:
    """Warnings not delivered by their deadline become call-back tasks at the victim's centre."""
    now = now or utcnow()
    tier = next((x for x in policy.tiers if x.action == "warning"), None)
    callback_tier = next((x for x in policy.tiers if x.action == "callback"), None)
    if tier is None or callback_tier is None:
        return 0
    cutoff = now - timedelta(minutes=tier.deadline_minutes)
    made = 0
    with store.begin() as conn:
        rows = conn.execute(select(ft.fw_outbox.c.warning_id, ft.fw_outbox.c.recipient, ft.fw_outbox.c.status,
                                   t.warnings_.c.alert_id, t.warnings_.c.scam_type)
                            .join(t.warnings_, t.warnings_.c.warning_id == ft.fw_outbox.c.warning_id)
                            .where(ft.fw_outbox.c.status != "delivered", ft.fw_outbox.c.created_at < cutoff)).all()
        if not rows:
            return 0
        router = Router.from_store(conn, store.settings.country if store.settings else None)
        states = {r.subscriber: r for r in conn.execute(select(ft.fw_risk_state).where(
            ft.fw_risk_state.c.subscriber.in_([r.recipient for r in rows])))}
        for r in rows:
            state = states.get(r.recipient)
            centre = router.centres.get(state.centre_id) if state is not None and state.centre_id else None
            centre = centre or router.route(r.recipient)
            if centre is None:
                continue
            task_id = tk.create_task(conn, kind="callback", subscriber=r.recipient, centre=centre,
                                     ack_minutes=callback_tier.deadline_minutes,
                                     idempotency_key=f"callback-undelivered:{r.warning_id}",
                                     score=float(state.score) if state is not None else 0.0,
                                     reasons=["delivery.warning_not_delivered"],
                                     detail={"warning_id": r.warning_id, "outbox_status": r.status,
                                             "scam_type": r.scam_type},
                                     alert_id=r.alert_id, now=now)
            if task_id:
                made += 1
                audit.append(conn, ACTOR, "forewarning.callback_for_undelivered", r.recipient,
                             {"warning_id": r.warning_id, "task_id": task_id})
    return made


def ensure_signing_key(store: Store) -> Signer:
    if store.settings is None:
        raise ValueError("the store has no data directory for the signing key")
    signer = Signer.load_or_create(store.settings.data_dir, store.settings.country)
    with store.begin() as conn:
        signer.register(conn)
    return signer


__all__ = ["Interventions", "ensure_signing_key", "undelivered_warnings_to_callbacks"]
