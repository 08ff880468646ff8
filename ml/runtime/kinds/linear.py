"""Model kind "linear": logistic regression as coefficients and an intercept.

Its explanation, coefficient x standardised value, is SHAP for a linear model on standardised
inputs (their training mean is 0).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ml.runtime.features import SpecError
from ml.runtime.kinds.base import N_INPUTS, fold_matrix, npz_array, sigmoid


@dataclass(frozen=True, eq=False)
class LinearModel:
    kind: ClassVar[str] = "linear"
    handles_missing: ClassVar[bool] = False  # scikit-learn's linear model refuses NaN

    coef: np.ndarray  # float64 (inputs,)
    intercept: float

    def raw(self, features: np.ndarray) -> np.ndarray:
        raw: np.ndarray = np.asarray(features, dtype=np.float64) @ self.coef + self.intercept
        return raw

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(self.raw(features))

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, coef=self.coef.astype(np.float64), intercept=np.float64(self.intercept))
        return buffer.getvalue()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LinearModel:
        coef = npz_array(arrays, "coef", np.float64, 1, N_INPUTS)
        intercept = float(npz_array(arrays, "intercept", np.float64, 0))
        if not (np.isfinite(coef).all() and np.isfinite(intercept)):
            raise SpecError("model.npz: coefficients and intercept must be finite")
        return cls(coef=coef, intercept=intercept)

    def explainer(self) -> LinearShap:
        return LinearShap(self)


class LinearShap:
    def __init__(self, model: LinearModel) -> None:
        self._weights = model.coef[:, None] * fold_matrix()  # (model inputs, raw inputs)
        self._base = model.intercept

    @property
    def base_value(self) -> float:
        return self._base

    def contributions(self, model_inputs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(model_inputs, dtype=np.float64) @ self._weights
        return out
