"""Forewarn: early warning and cross-border cooperation against telecom and online fraud.

One package, one folder per capability (see DESIGN.md in the README): ``model`` holds the typed
records every capability speaks, ``store`` keeps them, ``ingest`` brings events in, and the
detectors, firewall, forewarning, centres, federation, publishing and web layers build on them.
"""

__version__ = "0.1.0"
