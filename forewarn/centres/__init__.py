"""Centres: the country → province → city hierarchy from configuration, jurisdictions (home region
or number prefix), officers, task queues with deadlines, escalation up the hierarchy, officers'
outcomes and cases.

Modules: ``config`` (load the YAML hierarchy), ``routing`` (which centre is responsible),
``tasks`` (queues, acknowledgement, outcomes, escalation), ``cases`` (grouping and outcomes).
"""
