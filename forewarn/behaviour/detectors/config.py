"""The node's detector settings: which keyword settings each registered detector is built with.

``detectors.yaml`` next to this module holds the shipped defaults; a node overrides them in
``<data-dir>/behaviour/detectors.yaml``, or in the file ``FOREWARN_BEHAVIOUR_CONFIG`` names. Keys
are detector names, then keywords of the detector's constructor; a typo is an error naming the key,
so it never silently leaves a detector on its defaults. A ``<keyword>_file`` key (e.g.
``roaming_numbers_file``) names a file of list entries, one a line, added to ``<keyword>``.

:class:`NumberSet` is the matcher for lists of numbers an operator keeps (exact numbers, ranges,
prefixes), used by the spoofed caller-ID detector's exemptions.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.behaviour.detectors.base import Detector, registered
from forewarn.config import read_yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("detectors.yaml")
CONFIG_ENV = "FOREWARN_BEHAVIOUR_CONFIG"
NODE_CONFIG = Path("behaviour") / "detectors.yaml"

_NUMBER = r"\+?\d{3,20}"
_ENTRY = re.compile(rf"^(?P<lo>{_NUMBER})(?:-(?P<hi>{_NUMBER})|(?P<star>\*))?$")


class DetectorConfigError(ValueError):
    """Detector settings that cannot be used; the message names the file and key."""


class NumberSet:
    """Numbers given as exact numbers, ranges ``+6681000-+6681999`` (both ends of one length,
    inclusive) and prefixes ``+66810*``. Entries are kept sorted so detectors stay deterministic."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        exact: set[str] = set()
        prefixes: set[str] = set()
        ranges: set[tuple[str, str]] = set()
        for raw in entries:
            entry = str(raw).strip().replace(" ", "")
            m = _ENTRY.match(entry)
            if not m:
                raise ValueError(f"not a number, range (A-B) or prefix (A*): {raw!r}")
            lo, hi = m["lo"], m["hi"]
            if m["star"]:
                prefixes.add(lo)
            elif hi is None:
                exact.add(lo)
            else:
                if len(lo) != len(hi) or lo[0] != hi[0] or lo > hi:
                    raise ValueError(f"a range joins two numbers of one length, low to high: {raw!r}")
                ranges.add((lo, hi))
        self.exact = tuple(sorted(exact))
        self.prefixes = tuple(sorted(prefixes))
        self.ranges = tuple(sorted(ranges))

    @property
    def entries(self) -> tuple[str, ...]:
        return (*self.exact, *(f"{lo}-{hi}" for lo, hi in self.ranges), *(f"{p}*" for p in self.prefixes))

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes or self.ranges)

    def __repr__(self) -> str:
        return f"NumberSet({list(self.entries)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberSet) and self.entries == other.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __contains__(self, number: object) -> bool:
        return bool(self.mask(pd.Series([str(number)]))[0])

    def mask(self, numbers: pd.Series) -> np.ndarray:
        """Which of ``numbers`` are in the set (vectorised: window tables hold many rows)."""
        values = numbers.astype(str)
        # pandas may hand out read-only arrays: combine into a fresh one
        hit = np.array(values.isin(self.exact).to_numpy(dtype=bool)) if self.exact else np.zeros(len(values), bool)
        if self.prefixes:
            hit = hit | values.str.startswith(self.prefixes).to_numpy(dtype=bool)
        if self.ranges:
            lengths = values.str.len().to_numpy()
            for lo, hi in self.ranges:
                # equal-length digit strings with the same leading "+" (or none) order like numbers
                hit = hit | ((lengths == len(lo)) & (values >= lo).to_numpy(dtype=bool)
                             & (values <= hi).to_numpy(dtype=bool))
        return hit


def node_config_path(settings: Any = None) -> Path | None:
    """The node's override file: ``FOREWARN_BEHAVIOUR_CONFIG``, else ``<data-dir>/behaviour/detectors.yaml``
    when it exists (the data directory of ``settings``, else ``FOREWARN_DATA_DIR``)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    data_dir = getattr(settings, "data_dir", None) or os.environ.get("FOREWARN_DATA_DIR")
    if data_dir:
        candidate = Path(data_dir) / NODE_CONFIG
        if candidate.exists():
            return candidate
    return None


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path, DetectorConfigError, "detector settings file")
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise DetectorConfigError(f"detector settings {path} map detector names to their settings")
    return {str(k): dict(v or {}) for k, v in data.items()}


def _list_file(path: Path, where: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DetectorConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    return [item for line in lines if (item := line.split("#", 1)[0].strip())]


def load_detector_settings(path: str | Path | None = None, settings: Any = None) -> dict[str, dict[str, Any]]:
    """Constructor keywords by detector name: the shipped defaults, with ``path`` (default: the
    node's override file, :func:`node_config_path`) merged over them key by key."""
    classes = registered()
    merged = _read(DEFAULT_CONFIG_PATH)
    sources: list[tuple[Path, dict[str, dict[str, Any]]]] = [(DEFAULT_CONFIG_PATH, merged)]
    override = Path(path) if path is not None else node_config_path(settings)
    if override is not None:
        sources.append((override, _read(override)))
    out: dict[str, dict[str, Any]] = {}
    for origin, data in sources:
        for name, keys in data.items():
            cls = classes.get(name)
            if cls is None:
                raise DetectorConfigError(f"{origin}: unknown detector {name!r}; known: {', '.join(classes)}")
            params = inspect.signature(cls.__init__).parameters
            target = out.setdefault(name, {})
            for key, value in keys.items():
                where = f"{origin}: {name}.{key}"
                if key.endswith("_file") and key[: -len("_file")] in params:
                    listed = [] if value is None else value if isinstance(value, list) else [value]
                    # a later file's list replaces an earlier one's, like any other key
                    target[key] = [e for f in listed for e in _list_file(origin.parent / str(f), where)]
                    continue
                if key not in params or key == "self":
                    raise DetectorConfigError(f"{where}: not a setting of {cls.__name__}")
                target[key] = value
    for keys in out.values():
        # entries from files join the keyword's own list
        for key in [k for k in keys if k.endswith("_file")]:
            base = key[: -len("_file")]
            extra = keys.pop(key)
            if extra:
                keys[base] = [*(keys.get(base) or []), *extra]
    return out


def configured_detectors(path: str | Path | None = None, settings: Any = None) -> list[Detector]:
    """Every registered detector, built with the node's settings (:func:`load_detector_settings`)."""
    config = load_detector_settings(path, settings)
    detectors = []
    for name, cls in registered().items():
        try:
            detectors.append(cls(**config.get(name, {})))
        except (TypeError, ValueError) as exc:
            raise DetectorConfigError(f"settings of {name}: {exc}") from None
    return detectors
