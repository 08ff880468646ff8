"""`TransactionFeatures`: the preprocessor as a scikit-learn transformer, for training.

It computes exactly what the serving form (`ml.runtime.features.Standardiser`) computes, and
hands that form over with `serving_form()`. It is pickled into the bundle's audit copy
(`preprocessor.joblib`), so its class must stay importable under this name; the service never
unpickles it.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ml.runtime.features import OUTPUT_NAMES, Standardiser, derive
from ml.runtime.schema import FEATURE_NAMES


class TransactionFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Fit: the mean and scale of the derived features on the training rows only."""

    def fit(self, X: np.ndarray, y: object = None) -> Self:
        derived = derive(np.asarray(X, dtype=np.float64))
        self.mean_ = derived.mean(axis=0)
        scale = derived.std(axis=0)
        self.scale_ = np.where(scale > 0.0, scale, 1.0)
        self.n_features_in_ = len(FEATURE_NAMES)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.serving_form().transform(X)

    def serving_form(self) -> Standardiser:
        return Standardiser(mean=np.asarray(self.mean_), scale=np.asarray(self.scale_))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(OUTPUT_NAMES, dtype=object)
