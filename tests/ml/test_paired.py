"""The paired bootstrap of the F1 difference: zero for the same decisions, clear of zero for a
clear improvement, straddling zero for one fraud more caught out of 84, the same point
difference as the metrics, and the same draws however the resamples are blocked."""

from __future__ import annotations

import numpy as np
import pytest

import ml.paired
from ml.evaluate import classification_metrics
from ml.paired import paired_f1

PREVALENCE = 0.00172


def population(
    caught: int, false_alarms: int, frauds: int = 84, n: int = 3861
) -> tuple[np.ndarray, np.ndarray]:
    y = np.zeros(n, dtype=np.int64)
    y[:frauds] = 1
    flags = np.zeros(n, dtype=bool)
    flags[:caught] = True
    flags[frauds : frauds + false_alarms] = True
    return y, flags


def test_the_same_decisions_differ_by_nothing() -> None:
    y, flags = population(60, 3)
    result = paired_f1(y, flags, flags, PREVALENCE)
    assert result.difference == 0.0
    assert result.interval_95 == (0.0, 0.0)


def test_a_clear_improvement_is_clear_of_zero() -> None:
    y, better = population(75, 1)
    _, worse = population(40, 1)
    result = paired_f1(y, better, worse, PREVALENCE)
    assert result.interval_95[0] > 0


def test_one_fraud_more_out_of_84_is_within_the_noise() -> None:
    y, better = population(61, 2)
    _, worse = population(60, 2)
    result = paired_f1(y, better, worse, PREVALENCE)
    assert result.difference > 0
    assert result.interval_95[0] <= 0 < result.interval_95[1]


def test_the_point_difference_is_the_metrics_difference() -> None:
    y, better = population(70, 4)
    _, worse = population(55, 1)
    scores = {name: flags.astype(float) for name, flags in (("a", better), ("b", worse))}
    f1 = {k: classification_metrics(y, s, 0.5, PREVALENCE)["f1"] for k, s in scores.items()}
    assert paired_f1(y, better, worse, PREVALENCE).difference == pytest.approx(f1["a"] - f1["b"])


def test_blocks_of_resamples_draw_the_same_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    y, better = population(70, 4)
    _, worse = population(55, 1)
    whole = paired_f1(y, better, worse, PREVALENCE, resamples=300)
    monkeypatch.setattr(ml.paired, "CELLS_PER_BLOCK", 7 * y.size)  # 7 resamples at a time
    assert paired_f1(y, better, worse, PREVALENCE, resamples=300) == whole
