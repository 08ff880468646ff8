"""The paired bootstrap of the F1 difference: zero for the same decisions, clear of zero for a
clear improvement, straddling zero for one fraud more caught out of 84, the same point
difference as the metrics, the same draws however the resamples are blocked; and the
promotion gate, which needs the confidence as well as the gain."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import ml.paired
from ml.data import load_dataset
from ml.evaluate import classification_metrics
from ml.paired import paired_f1
from ml.promote import decide, evaluate_bundle
from ml.runtime.bundle import load_bundle
from ml.testing.processes import EVAL_DATA

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


def test_one_fraud_more_is_above_zero_in_too_few_resamples_to_promote() -> None:
    y, better = population(61, 2)
    _, worse = population(60, 2)
    share = paired_f1(y, better, worse, PREVALENCE).share_above
    assert 0.5 < share < 0.9  # better more often than not, not with 90 % confidence


def test_the_gate_needs_the_confidence_as_well_as_the_gain(
    weak_files: dict[str, bytes], strong_files: dict[str, bytes]
) -> None:
    data = load_dataset(EVAL_DATA)
    strong, weak = (evaluate_bundle(load_bundle(f), data) for f in (strong_files, weak_files))
    flags = [e.scores >= e.bundle.threshold for e in (strong, weak)]
    measured = paired_f1(data.y, flags[0], flags[1], PREVALENCE)
    assert measured.share_above >= 0.9  # the real, clearly better model passes at 90 %
    for share, promoted in ((0.7, False), (0.95, True)):
        doubtful = replace(measured, share_above=share)
        go, action, reason = decide(
            strong, weak, min_delta=0.0, force=False, paired=doubtful, confidence=0.9
        )
        assert (go, action) == ((True, "promote") if promoted else (False, "keep"))
        if not promoted:
            assert "better in only 70% of the resamples, under --confidence 90%" in reason
