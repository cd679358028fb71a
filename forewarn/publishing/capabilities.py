"""Finding the other capabilities' libraries without depending on them.

Publishing and the pages show what other capabilities produce (firewall decisions, appeals,
officer tasks, federation). Each may or may not be installed in a given tree; ``optional`` imports
one module and reports clearly when it is absent, so a panel can say so instead of faking data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Capability:
    module: str
    found: ModuleType | None
    reason: str | None = None

    @property
    def installed(self) -> bool:
        return self.found is not None

    def attr(self, name: str) -> object | None:
        return getattr(self.found, name, None) if self.found is not None else None


def optional(module: str, *needed: str) -> Capability:
    """Import ``module`` if present and offering every name in ``needed``."""
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        return Capability(module, None, f"{module} is not installed on this node ({exc.name or exc})")
    missing = [name for name in needed if not hasattr(found, name)]
    if missing:
        return Capability(module, None, f"{module} does not offer {', '.join(missing)} yet")
    return Capability(module, found)
