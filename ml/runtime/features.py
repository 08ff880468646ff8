"""The preprocessor's serving form: raw transaction features in, model inputs out.

V1..V28 as they are, log1p(Amount), and the time of day as a point on a circle, standardised
with the mean and scale seen in training. `Time` counts seconds from the first transaction of
the collection, so its raw value does not generalise beyond the two days it covers; its time of
day does. Plain NumPy, and its parameters travel as JSON (`preprocessor.json`): loading it
executes nothing. Training fits it through `ml.features.TransactionFeatures`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.runtime.schema import FEATURE_NAMES
from ml.runtime.untrusted_json import NotJsonObject, parse_object

SECONDS_PER_DAY = 86_400.0
_TIME = FEATURE_NAMES.index("Time")
_AMOUNT = FEATURE_NAMES.index("Amount")
_PCA = [FEATURE_NAMES.index(f"V{i}") for i in range(1, 29)]

OUTPUT_NAMES = (*(f"V{i}" for i in range(1, 29)), "log_amount", "hour_sin", "hour_cos")
# Which raw input each model input comes from (explanations fold derived features back).
OUTPUT_SOURCES = (*(f"V{i}" for i in range(1, 29)), "Amount", "Time", "Time")
KIND = "transaction-features/1"


class SpecError(ValueError):
    """A serving file that does not describe what it claims; the message says what is wrong."""


def derive(X: np.ndarray) -> np.ndarray:
    """The model inputs before standardisation, for rows in `FEATURE_NAMES` order."""
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected shape (n, {len(FEATURE_NAMES)}), got {X.shape}")
    out = np.empty((X.shape[0], len(OUTPUT_NAMES)), dtype=np.float64)
    out[:, :28] = X[:, _PCA]
    # Amount is never negative in the data; clip so a bad client value cannot produce NaN.
    out[:, 28] = np.log1p(np.maximum(X[:, _AMOUNT], 0.0))
    angle = (X[:, _TIME] % SECONDS_PER_DAY) * (2.0 * np.pi / SECONDS_PER_DAY)
    out[:, 29] = np.sin(angle)
    out[:, 30] = np.cos(angle)
    return out


@dataclass(frozen=True, eq=False)
class Standardiser:
    mean: np.ndarray  # float64, one per model input
    scale: np.ndarray  # float64, > 0

    def transform(self, X: np.ndarray) -> np.ndarray:
        derived = derive(np.asarray(X, dtype=np.float64))
        derived -= self.mean
        derived /= self.scale
        return derived

    def to_json(self) -> bytes:
        payload = {
            "kind": KIND,
            "outputs": list(OUTPUT_NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }
        return json.dumps(payload, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Standardiser:
        try:
            raw = parse_object(data)
        except NotJsonObject as exc:
            raise SpecError(f"preprocessor.json is not valid: {exc}") from None
        if raw.get("kind") != KIND:
            raise SpecError(f"preprocessor.json is not of kind {KIND!r}")
        if raw.get("outputs") != list(OUTPUT_NAMES):
            raise SpecError("preprocessor.json names other model inputs than this code makes")
        n = len(OUTPUT_NAMES)
        mean = finite_numbers(raw.get("mean"), "preprocessor.json: mean", size=n)
        scale = finite_numbers(raw.get("scale"), "preprocessor.json: scale", size=n)
        if not (scale > 0.0).all():
            raise SpecError("preprocessor.json: every scale must be > 0")
        return cls(mean=mean, scale=scale)


def finite_numbers(values: Any, what: str, *, size: int, exact: bool = True) -> np.ndarray:
    """A JSON list of `size` (or, not `exact`, at most `size`) finite numbers, booleans not
    counting as numbers, as float64; else `SpecError` saying "`what` must be ..."."""
    if (
        not isinstance(values, list)
        or (len(values) != size if exact else len(values) > size)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(math.isfinite(v) for v in values)
    ):
        count = size if exact else f"at most {size}"
        raise SpecError(f"{what} must be {count} finite numbers")
    return np.asarray(values, dtype=np.float64)
