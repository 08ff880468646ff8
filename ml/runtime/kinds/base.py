"""What every model kind provides, and the helpers the kinds share.

A kind is one module in this package: a frozen dataclass of numeric arrays that scores
(`raw` log-odds, `predict_proba`), writes itself as `model.npz` (`to_npz`), reads itself back
from untrusted arrays (`from_arrays`, raising `SpecError` on anything wrong) and makes its
explainer (`explainer`, raising `SpecError` if it cannot have one). `ml.runtime.kinds.SERVING_KINDS`
maps each kind's name, as manifests record it, to its class.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, Self

import numpy as np

from ml.runtime.features import OUTPUT_NAMES, OUTPUT_SOURCES, SpecError
from ml.runtime.schema import FEATURE_NAMES

N_INPUTS = len(OUTPUT_NAMES)


class Explainer(Protocol):
    """Each raw input's contribution to a row's log-odds; with `base_value`, they sum to it."""

    @property
    def base_value(self) -> float: ...

    def contributions(self, model_inputs: np.ndarray) -> np.ndarray: ...


class Scorer(Protocol):
    kind: ClassVar[str]  # the name manifests record in serving.model_kind
    # Whether it routes NaN inputs as scikit-learn does: the build then proves it on such rows.
    handles_missing: ClassVar[bool]

    def raw(self, features: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...

    def to_npz(self) -> bytes: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self: ...

    def explainer(self) -> Explainer: ...


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """Log-odds to probabilities, as scikit-learn's `predict_proba` computes them."""
    with np.errstate(over="ignore"):  # exp(-raw) may overflow to inf: 1 / inf is the right 0
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
    return probabilities


def fold_matrix() -> np.ndarray:
    """(model inputs, raw inputs): 1 where a model input comes from a raw input. Explainers
    fold log_amount back onto Amount, the time of day's sine and cosine onto Time."""
    fold = np.zeros((len(OUTPUT_SOURCES), len(FEATURE_NAMES)), dtype=np.float64)
    for i, source in enumerate(OUTPUT_SOURCES):
        fold[i, FEATURE_NAMES.index(source)] = 1.0
    return fold


def npz_array(
    arrays: dict[str, np.ndarray], name: str, dtype: type, ndim: int, size: int | None = None
) -> np.ndarray:
    """One array of an untrusted `model.npz`, of exactly this dtype, rank and (if given) size."""
    if name not in arrays:
        raise SpecError(f"model.npz has no array {name!r}")
    array = arrays[name]
    if array.dtype != np.dtype(dtype) or array.ndim != ndim:
        raise SpecError(
            f"model.npz: {name} is {array.dtype}[{array.ndim}d], expected {np.dtype(dtype)}"
            f"[{ndim}d]"
        )
    if size is not None and array.size != size:
        raise SpecError(f"model.npz: {name} has {array.size} values, expected {size}")
    return array
