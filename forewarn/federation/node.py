"""One node's federation context: its store, its policy, its signing key and its partner credentials.

Everything lives under ``<data-dir>/federation/``: ``policy.yaml`` (the country's own sovereignty
policy), ``node.key`` (the Ed25519 seed, mode 600) and ``credentials.json`` (per partner: the API
key this node presents to that partner, and the pairwise key for keyed hashes; mode 600).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forewarn.config import Settings
from forewarn.federation.policy import NodePolicy, PolicyError, example_policy_path, load_policy
from forewarn.federation.signing import NodeKey, SignatureError, generate_key, load_key
from forewarn.store import Store


class FederationError(RuntimeError):
    """Federation cannot proceed; the message says why and what to do."""


def federation_dir(settings: Settings) -> Path:
    return settings.data_dir / "federation"


def policy_path(settings: Settings) -> Path:
    return federation_dir(settings) / "policy.yaml"


def key_path(settings: Settings) -> Path:
    return federation_dir(settings) / "node.key"


def credentials_path(settings: Settings) -> Path:
    return federation_dir(settings) / "credentials.json"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass
class Credentials:
    """What this node holds for each partner: the API key it presents and the pairwise hash key."""

    by_partner: dict[str, dict[str, str]] = field(default_factory=dict)

    def api_key(self, partner: str) -> str | None:
        return self.by_partner.get(partner.upper(), {}).get("api_key")

    def hash_key(self, partner: str) -> bytes | None:
        raw = self.by_partner.get(partner.upper(), {}).get("hash_key")
        return base64.b64decode(raw) if raw else None

    def set(self, partner: str, **values: str) -> None:
        self.by_partner.setdefault(partner.upper(), {}).update({k: v for k, v in values.items() if v})


def load_credentials(settings: Settings) -> Credentials:
    path = credentials_path(settings)
    if not path.exists():
        return Credentials()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FederationError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FederationError(f"{path} must hold a JSON object of partners")
    return Credentials({str(k).upper(): dict(v) for k, v in data.items() if isinstance(v, dict)})


def save_credentials(settings: Settings, creds: Credentials) -> None:
    _write_private(credentials_path(settings), json.dumps(creds.by_partner, indent=2, sort_keys=True) + "\n")


@dataclass
class FederationNode:
    """The pieces every federation operation needs, loaded once."""

    settings: Settings
    store: Store
    policy: NodePolicy
    key: NodeKey | None
    credentials: Credentials

    @property
    def name(self) -> str:
        return self.policy.node

    def require_key(self) -> NodeKey:
        if self.key is None:
            raise FederationError(f"node {self.name} has no signing key; run `forewarn federation keygen`")
        return self.key

    def info(self) -> dict[str, Any]:
        return {"node": self.name, "public_key": self.key.public_key if self.key else None,
                "partners": sorted(self.policy.partners)}


def load_node(settings: Settings, store: Store, *, policy: NodePolicy | None = None) -> FederationNode:
    """The node's federation context; a missing policy is a clear error, a missing key is allowed
    (reading works, signing does not)."""
    if policy is None:
        path = policy_path(settings)
        if not path.exists():
            raise FederationError(f"no federation policy at {path}; start from an example with "
                                  f"`forewarn federation policy init --country {settings.country.lower()}`")
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            raise FederationError(str(exc)) from None
    key = None
    if key_path(settings).exists():
        try:
            key = load_key(key_path(settings), policy.node)
        except SignatureError as exc:
            raise FederationError(str(exc)) from None
    return FederationNode(settings, store, policy, key, load_credentials(settings))


def init_policy(settings: Settings, country: str, *, overwrite: bool = False) -> Path:
    """Copy the example policy of ``country`` into the node's data directory."""
    try:
        source = example_policy_path(country)
    except PolicyError as exc:
        raise FederationError(str(exc)) from None
    target = policy_path(settings)
    if target.exists() and not overwrite:
        raise FederationError(f"{target} already exists; edit it, or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def keygen(settings: Settings, node: str, *, overwrite: bool = False) -> NodeKey:
    try:
        return generate_key(key_path(settings), node, overwrite=overwrite)
    except FileExistsError as exc:
        raise FederationError(str(exc)) from None
