"""Batch metric updates give exactly the series row-by-row updates give; a reader of the
workers' files never sees a drift window half written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.runtime.drift import TRACKED
from service.observe.metrics import SCORE_BUCKETS, Metrics
from service.observe.multiprocess import read_worker_families

ROOT = Path(__file__).resolve().parents[3]


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


# A worker publishing windows of k rows in every bin of every series, k = 1, 2, ...
PUBLISHING_WORKER = """
import sys
import numpy as np
from ml.runtime.drift import BINS, TRACKED
from service.observe.metrics import Metrics

metrics = Metrics()
print("started", flush=True)
for k in range(1, int(sys.argv[1]) + 1):
    metrics.publish_drift_window(np.full((len(TRACKED), BINS), k, dtype=np.int64))
"""


def test_a_reader_never_sees_a_window_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", PUBLISHING_WORKER, "3000"], env=env, stdout=subprocess.PIPE
    ) as worker:
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"started\n"
            reads, half_written = 0, []
            while worker.poll() is None and reads < 5000:
                totals = dict.fromkeys(TRACKED, 0.0)
                for family in read_worker_families():
                    for sample in family.samples:
                        if sample.name == "fraud_drift_window_rows":
                            totals[sample.labels["feature"]] += sample.value
                reads += 1
                live_rows = totals[TRACKED[0]]  # what `drift_status` reports
                behind = {name: total for name, total in totals.items() if total < live_rows}
                if behind:
                    half_written.append((live_rows, behind))
        finally:
            worker.kill()
    assert reads > 10  # it read while the worker published
    assert half_written == [], f"{len(half_written)} of {reads} reads: {half_written[:2]}"
