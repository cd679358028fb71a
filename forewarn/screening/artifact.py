"""The trained screening model as a small file: weights of three linear heads and their settings.

Heads, all over the same hashed n-grams and dense cue flags (:mod:`forewarn.screening.features`):
``bin`` scores fraud-or-spam versus ham (Platt-calibrated to a probability), ``fraud`` tells fraud
from spam among positives, ``cat`` picks the scam type. Saved as one compressed ``.npz`` with a
JSON header; the committed copy lives in ``model/screener.npz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from forewarn.screening import features
from forewarn.screening.features import DENSE_CODES, HASH_BITS

FRAUD_BITS = 16
CAT_BITS = 15
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """The model file is missing, unreadable or from an incompatible version."""


@dataclass
class Artifact:
    w_bin: np.ndarray
    d_bin: np.ndarray
    b_bin: float
    platt: tuple[float, float]
    w_fraud: np.ndarray
    d_fraud: np.ndarray
    b_fraud: float
    w_cat: np.ndarray          # (2**CAT_BITS, K)
    d_cat: np.ndarray          # (len(DENSE_CODES), K)
    b_cat: np.ndarray          # (K,)
    categories: list[str]
    threshold: float = 0.5     # probability at or above which a message is fraud/spam
    call_threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Row-major weights: a sparse-times-dense product with a column-major matrix copies all of
        # it (2^15 x K floats) on every call.
        self.w_cat = np.ascontiguousarray(self.w_cat, dtype=np.float32)

    def save(self, path: Path) -> None:
        header = {"format": FORMAT_VERSION, "hash_bits": HASH_BITS, "length_power": features.LENGTH_POWER,
                  "fraud_bits": FRAUD_BITS, "cat_bits": CAT_BITS,
                  "dense_codes": list(DENSE_CODES), "categories": self.categories, "b_bin": self.b_bin,
                  "platt": list(self.platt), "b_fraud": self.b_fraud, "threshold": self.threshold,
                  "call_threshold": self.call_threshold, "meta": self.meta}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez_compressed(fh, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                                w_bin=self.w_bin.astype(np.float32), d_bin=self.d_bin.astype(np.float32),
                                w_fraud=self.w_fraud.astype(np.float16), d_fraud=self.d_fraud.astype(np.float32),
                                w_cat=self.w_cat.astype(np.float16), d_cat=self.d_cat.astype(np.float32),
                                b_cat=self.b_cat.astype(np.float32))

    @classmethod
    def load(cls, path: Path | str) -> Artifact:
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in ("w_bin", "d_bin", "w_fraud", "d_fraud", "w_cat", "d_cat", "b_cat")}
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"cannot read screening model {path}: {exc}") from None
        if header.get("format") != FORMAT_VERSION or header.get("dense_codes") != list(DENSE_CODES) \
                or header.get("hash_bits") != HASH_BITS or header.get("length_power", 0.5) != features.LENGTH_POWER:
            raise ArtifactError(f"screening model {path} was trained with other features; retrain it "
                                "with `forewarn train screener`")
        return cls(arrays["w_bin"].astype(np.float64), arrays["d_bin"].astype(np.float64), float(header["b_bin"]),
                   (float(header["platt"][0]), float(header["platt"][1])),
                   arrays["w_fraud"].astype(np.float64), arrays["d_fraud"].astype(np.float64), float(header["b_fraud"]),
                   np.ascontiguousarray(arrays["w_cat"], dtype=np.float32),
                   np.ascontiguousarray(arrays["d_cat"], dtype=np.float32), arrays["b_cat"],
                   list(header["categories"]), float(header["threshold"]), float(header["call_threshold"]),
                   dict(header.get("meta", {})))


def default_artifact_path() -> Path:
    return Path(str(resources.files("forewarn.screening").joinpath("model/screener.npz")))
