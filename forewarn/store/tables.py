"""All table metadata of the node, gathered for migrations and the schema check.

Core tables live in ``schema.py``; a capability with tables of its own defines them on the same
``metadata`` object in its ``tables.py`` and lists that module here.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from forewarn.store.schema import metadata

CAPABILITY_TABLE_MODULES: tuple[str, ...] = (
    "forewarn.centres.tables",
    "forewarn.forewarning.tables",
    "forewarn.federation.tables",
    "forewarn.firewall.tables",
    "forewarn.publishing.tables",
    "forewarn.reputation.tables",
)


def all_metadata() -> MetaData:
    for module in CAPABILITY_TABLE_MODULES:
        importlib.import_module(module)
    return metadata
