"""The preprocessor: raw transaction features in, model inputs out.

Plain NumPy (no pandas) because it runs inside the serving process on every request. It is
pickled into the bundle, so its class must stay importable under this name.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ml.runtime.schema import FEATURE_NAMES

SECONDS_PER_DAY = 86_400.0
_TIME = FEATURE_NAMES.index("Time")
_AMOUNT = FEATURE_NAMES.index("Amount")
_PCA = [FEATURE_NAMES.index(f"V{i}") for i in range(1, 29)]

OUTPUT_NAMES = (*(f"V{i}" for i in range(1, 29)), "log_amount", "hour_sin", "hour_cos")


class TransactionFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """V1..V28 as they are, log1p(Amount), and the time of day as a point on a circle.

    `Time` counts seconds from the first transaction of the collection, so its raw value does
    not generalise beyond the two days it covers; its time of day does. All outputs are then
    standardised with the mean and scale seen in `fit` (train split only).
    """

    def fit(self, X: np.ndarray, y: object = None) -> Self:
        derived = _derive(np.asarray(X, dtype=np.float64))
        self.mean_ = derived.mean(axis=0)
        scale = derived.std(axis=0)
        self.scale_ = np.where(scale > 0.0, scale, 1.0)
        self.n_features_in_ = len(FEATURE_NAMES)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        derived = _derive(np.asarray(X, dtype=np.float64))
        derived -= self.mean_
        derived /= self.scale_
        return derived

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(OUTPUT_NAMES, dtype=object)


def _derive(X: np.ndarray) -> np.ndarray:
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
