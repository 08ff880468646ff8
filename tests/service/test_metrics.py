"""Batch metric updates give exactly the series row-by-row updates give."""

from __future__ import annotations

import numpy as np

from service.metrics import SCORE_BUCKETS, Metrics


def series(metrics: Metrics) -> list[str]:
    text = metrics.render()[0].decode()
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(("fraud_predictions_total", "fraud_score_")) and "_created" not in line
    )


def test_counting_a_batch_equals_counting_its_rows() -> None:
    rng = np.random.default_rng(3)
    # Every bucket edge exactly, values between them, 0 and 1.
    probabilities = np.concatenate([np.array(SCORE_BUCKETS), rng.random(500), [0.0, 1.0]])
    flags = probabilities >= 0.42
    one_by_one, at_once = Metrics(), Metrics()
    for probability, flag in zip(probabilities.tolist(), flags.tolist(), strict=True):
        one_by_one.count_prediction(probability, flag)
    at_once.count_predictions(probabilities, flags)
    batch, rows = series(at_once), series(one_by_one)
    # The sum is the one figure added in another order: equal to float rounding.
    batch_sum, rows_sum = (float(s[-1].split()[-1]) for s in (batch, rows))
    assert batch[-1].startswith("fraud_score_sum")
    assert abs(batch_sum - rows_sum) < 1e-9
    assert batch[:-1] == rows[:-1]
    assert any('le="0.5"' in line for line in series(at_once))
