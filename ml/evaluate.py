"""Metrics of a scorer on labelled data: one function, used by training and by promotion."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ml.runtime.schema import PRODUCTION_FRAUDS, PRODUCTION_LEGIT, PRODUCTION_PREVALENCE

# The scalar metrics every table prints, in order.
REPORTED_METRICS = (
    "f1",
    "precision",
    "recall",
    "pr_auc",
    "roc_auc",
    "f1_at_production_prevalence",
    "precision_at_production_prevalence",
    "prevalence",
)


def production_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights that make the weighted fraud prevalence equal production's 0.172 %.

    Each legit row weighs (n_fraud / n_legit) x (284,315 / 492); frauds weigh 1.
    """
    n_fraud = int(y.sum())
    n_legit = int(y.size - n_fraud)
    legit_weight = (n_fraud / n_legit) * (PRODUCTION_LEGIT / PRODUCTION_FRAUDS)
    return np.where(y == 1, 1.0, legit_weight)


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 (predict fraud when score >= threshold)."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best])


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """F1, precision, recall, PR-AUC, ROC-AUC, confusion matrix, prevalence, and F1 / precision
    re-weighted to production prevalence. `y` must hold both classes."""
    if np.unique(y).size < 2:
        raise ValueError("metrics need both classes in the evaluation data")
    predicted = (scores >= threshold).astype(np.int8)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[0, 1]).ravel())
    weights = production_weights(y)
    return {
        "threshold": float(threshold),
        "rows": int(y.size),
        "frauds": int(y.sum()),
        "prevalence": float(y.mean()),
        "f1": float(f1_score(y, predicted, zero_division=0.0)),
        "precision": float(precision_score(y, predicted, zero_division=0.0)),
        "recall": float(recall_score(y, predicted, zero_division=0.0)),
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "production_prevalence": PRODUCTION_PREVALENCE,
        "f1_at_production_prevalence": float(
            f1_score(y, predicted, sample_weight=weights, zero_division=0.0)
        ),
        "precision_at_production_prevalence": float(
            precision_score(y, predicted, sample_weight=weights, zero_division=0.0)
        ),
    }
