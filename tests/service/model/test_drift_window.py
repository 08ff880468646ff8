"""The drift window of one worker: rows counted in bulk, expired as the window slides, started
afresh for another model. A real `DriftMonitor` and `Metrics`, with a clock the test sets; and
/drift before the window holds enough rows, in-process."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from ml.data import Dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.drift import BINS, MIN_LIVE_ROWS, TRACKED
from ml.testing.keys import AUTH
from service.model.drift import DriftMonitor
from service.observe.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def live_rows(metrics: Metrics) -> int:
    status = metrics.drift_status()
    assert status is not None
    return status.live_rows


def published_reference(metrics: Metrics) -> np.ndarray:
    """The reference shares as the metrics expose them, (tracked, BINS)."""
    table = np.zeros((len(TRACKED), BINS))
    for family in metrics.families():
        if family.name == "fraud_drift_reference_ratio":
            for sample in family.samples:
                table[TRACKED.index(sample.labels["feature"]), int(sample.labels["bin"])] = (
                    sample.value
                )
    return table


def test_rows_leave_the_window_as_it_slides(
    strong_files: dict[str, bytes], dev_dataset: Dataset
) -> None:
    bundle = load_bundle(strong_files)
    rows = dev_dataset.X[:300]
    scores = bundle.score(rows)
    metrics, clock = Metrics(), Clock()
    monitor = DriftMonitor(metrics, window_s=120.0, clock=clock)  # 12 buckets of 10 s

    monitor.record(bundle, rows[:100], scores[:100])
    monitor.flush(bundle)
    assert live_rows(metrics) == 100
    clock.now += 60.0
    monitor.record(bundle, rows[100:300], scores[100:300])
    monitor.flush(bundle)
    assert live_rows(metrics) == 300
    clock.now += 65.0  # the first 100 rows are now over 120 s old
    monitor.flush(bundle)
    assert live_rows(metrics) == 200
    clock.now += 1000.0
    monitor.flush(bundle)
    assert live_rows(metrics) == 0


def test_another_model_starts_an_empty_window_and_brings_its_reference(
    strong_files: dict[str, bytes], bundle_files: dict[str, bytes], dev_dataset: Dataset
) -> None:
    first, second = load_bundle(strong_files), load_bundle(bundle_files)
    rows = dev_dataset.X[:50]
    metrics = Metrics()
    monitor = DriftMonitor(metrics)
    monitor.record(first, rows, first.score(rows))
    monitor.flush(first)
    assert live_rows(metrics) == 50
    monitor.record(first, rows, first.score(rows))  # scored by the old model, just before a swap
    monitor.flush(second)
    assert live_rows(metrics) == 0  # not counted against the new model's reference
    assert second.drift_reference is not None
    assert np.allclose(published_reference(metrics), second.drift_reference.expected)


def test_a_model_without_a_reference_is_not_monitored(
    strong_files: dict[str, bytes], dev_dataset: Dataset
) -> None:
    bundle = load_bundle(strong_files)
    unmonitored = type(bundle)(bundle.manifest, bundle.manifest_sha256, bundle.preprocessor,
                               bundle.model, drift_reference=None)  # fmt: skip
    metrics = Metrics()
    monitor = DriftMonitor(metrics)
    rows = dev_dataset.X[:10]
    monitor.record(unmonitored, rows, unmonitored.score(rows))
    monitor.flush(unmonitored)
    assert metrics.drift_status() is None


def test_old_rows_arriving_in_bulk_do_not_switch_the_window_back(
    strong_files: dict[str, bytes], bundle_files: dict[str, bytes], dev_dataset: Dataset
) -> None:
    """During a reload a large batch may still be scored by the old bundle; enough of its rows
    to force a count must not make the old bundle's window current again."""
    old, new = load_bundle(bundle_files), load_bundle(strong_files)
    metrics = Metrics()
    monitor = DriftMonitor(metrics)
    monitor.flush(new)  # the tick: the worker now serves `new`
    rows = dev_dataset.X[:1000]
    monitor.record(old, rows, old.score(rows))  # 1,000 rows: counted at once
    assert new.drift_reference is not None
    assert np.allclose(published_reference(metrics), new.drift_reference.expected)
    assert live_rows(metrics) == 0


def test_below_the_minimum_the_report_is_collecting_and_shows_no_level(
    client: TestClient,
) -> None:
    """A few rows give PSI of 3-8 by chance alone: /drift says it is still collecting, with
    how many rows it has and needs, and no PSI to read a level from."""
    for _ in range(5):
        assert (
            client.post("/predict", json={"features": [0.5] * 30}, headers=AUTH).status_code == 200
        )
    report = client.get("/drift", headers=AUTH).json()
    assert report["status"] == "collecting"
    assert report["live_rows"] == 5
    assert report["min_live_rows"] == MIN_LIVE_ROWS
    assert report["psi"]
    assert set(report["psi"].values()) == {None}
