"""Every reason code a firewall decision can carry, with what it means. A test checks that each
code the engine emits is documented here (codes from policy counter rules are documented by the
rule's entry in the policy file and match ``behaviour.*``)."""

from __future__ import annotations

REASONS: dict[str, str] = {
    "allowlist.emergency": "the caller or sender is an emergency number; allow-lists always win",
    "allowlist.government": "a government warning number or sender; allow-lists always win",
    "allowlist.sender_id": "a registered SMS sender ID; allow-lists always win",
    "allowlist.number": "a number the operator vouches for; allow-lists always win",
    "allowlist.personal": "the recipient allows this caller or sender personally; allow-lists always win",
    "overridden:": "prefix: a rule that would have marked or blocked, overridden by an allow-list",
    "reputation.listed": "the caller/sender is an active indicator (local detector or approved partner)",
    "reputation.partner": "a partner node asserted it (approved import)",
    "reputation.analyst_confirmed": "an analyst confirmed it (appeal rejected or verdict 'scam')",
    "reputation.citizen_reports": "citizens reported it, weighted by each reporter's track record",
    "reputation.url_listed": "the SMS text carries a listed URL or domain",
    "reputation.number_in_text_listed": "the SMS text asks to call a listed number",
    "appeal.pending": "the owner appealed; the analyst's decision is pending",
    "appeal.overdue_lifted": "an appeal passed the policy's deadline undecided, so the mark is lifted",
    "caller.invalid": "the presented caller ID is not a valid number (spoofing sign)",
    "sender.invalid": "the SMS sender is neither a valid number nor a valid sender ID",
    "policy.home_cli_over_international": "a home-country caller ID arrived over an international trunk",
    "policy.claimed_country_mismatch": "the country the caller claims differs from the number's country",
    "policy.roaming_foreign_cli": "a roaming call whose caller ID is not a home-country number",
    "policy.international_call": "the call came over an international trunk (labelled by policy)",
    "policy.sender_id_unregistered": "an alphanumeric sender ID not on the registry",
    "behaviour.": "prefix: a live-counter rule of the policy fired (e.g. behaviour.mass_dialling)",
    "counters.unavailable": "live counters were unavailable or too slow; decided without them",
    "screening.unavailable": "content screening is not installed or failed; decided without it",
    "screening.suspicious": "content screening scored the text at or above the policy's mark level",
    "screening.high_risk": "content screening scored the text at or above the policy's block level",
}


def documented(code: str) -> bool:
    if code in REASONS:
        return True
    return any(code.startswith(prefix) for prefix in REASONS if prefix.endswith((":", ".")))
