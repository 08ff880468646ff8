"""Live quality on a decision log built in the test: confusion counts per version against the
labels, a retried transaction counted once, no metric on a handful of labels, intervals that
stay honest when a cell is empty, label delays, and the summary the service reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from ml.live import live_quality
from ml.runtime.capture_files import capture_schema
from ml.runtime.live_summary import UnreadableSummary, checked
from ml.runtime.schema import FEATURE_NAMES

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def captures(rows: list[Row]) -> pa.Table:
    """(transaction id, version, probability, flagged, minutes after T0) per row."""
    n = len(rows)
    columns = {
        "request_id": ["r"] * n,
        "transaction_id": [r[0] for r in rows],
        "received_at": [T0 + timedelta(minutes=r[4]) for r in rows],
        "model_version": [r[1] for r in rows],
        **{name: [0.0] * n for name in FEATURE_NAMES},
        "fraud_probability": [r[2] for r in rows],
        "threshold": [0.5] * n,
        "is_fraud": [r[3] for r in rows],
        "api_key_id": ["k"] * n,
    }
    return pa.table(columns, schema=capture_schema())


def labels(pairs: dict[str, int], hours_later: float = 24.0) -> pa.Table:
    at = T0 + timedelta(hours=hours_later)
    return pa.table(
        {
            "id": list(pairs),
            "label": pa.array(list(pairs.values()), pa.int8()),
            "labelled_at": pa.array([at] * len(pairs), pa.timestamp("ms", tz="UTC")),
        }
    )


Row = tuple[str, str, float, bool, int]


def population(
    version: str, n: int, frauds: int, caught: int, false_alarms: int
) -> tuple[list[Row], dict[str, int]]:
    rows: list[Row] = []
    truth: dict[str, int] = {}
    for i in range(n):
        tid = f"{version}-{i}"
        is_fraud = i < frauds
        flagged = i < caught or frauds <= i < frauds + false_alarms
        rows.append((tid, version, 0.9 if flagged else 0.1 + 0.001 * i / n, flagged, 0))
        truth[tid] = int(is_fraud)
    return rows, truth


def test_counts_per_version_and_a_retry_counted_once() -> None:
    rows, truth = population("v1", 1000, frauds=40, caught=30, false_alarms=10)
    rows.append(("v1-0", "v1", 0.9, True, 5))  # the client retried tx v1-0: counted once
    report = live_quality(captures(rows), labels(truth), prevalence=0.00172)
    (v1,) = report.versions
    assert v1.confusion == {"tp": 30, "fp": 10, "fn": 10, "tn": 950}
    assert v1.rows_scored == 1000
    assert v1.labelled_share == 1.0
    assert v1.precision == pytest.approx(0.75)
    assert v1.recall == pytest.approx(0.75)
    assert v1.f1 == pytest.approx(0.75)
    low, high = v1.intervals_95["f1"]
    assert low < 0.75 < high
    assert high - low < 0.25
    assert v1.label_delay_hours_p50 == pytest.approx(24.0)
    # At production's 0.172 % each false alarm weighs ~13x more than at the log's 4 %.
    assert v1.f1_at_prevalence is not None
    assert v1.f1 is not None
    assert v1.f1_at_prevalence < v1.f1


def test_few_labels_give_no_metric_and_say_so() -> None:
    rows, truth = population("v2", 1000, frauds=40, caught=30, false_alarms=10)
    few = {tid: y for tid, y in list(truth.items())[:150]}
    (v2,) = live_quality(captures(rows), labels(few), prevalence=0.00172).versions
    assert v2.f1 is None
    assert v2.precision is None
    assert v2.labelled == 150
    assert "too few for a metric" in v2.note


def test_versions_are_judged_apart_and_one_can_be_picked() -> None:
    a_rows, a_truth = population("va", 500, frauds=25, caught=25, false_alarms=0)
    b_rows, b_truth = population("vb", 500, frauds=25, caught=5, false_alarms=0)
    log, truth = captures(a_rows + b_rows), a_truth | b_truth
    report = live_quality(log, labels(truth), prevalence=0.00172)
    assert [(v.model_version, v.recall) for v in report.versions] == [("va", 1.0), ("vb", 0.2)]
    (va,) = live_quality(log, labels(truth), prevalence=0.00172, version="va").versions
    assert va.precision == 1.0
    assert va.intervals_95["precision"][0] < 0.99  # 25 of 25 is not proof of 100 %


def test_the_summary_the_service_reads_keeps_only_checked_fields() -> None:
    rows, truth = population("v1", 1000, frauds=40, caught=30, false_alarms=10)
    report = live_quality(captures(rows), labels(truth), prevalence=0.00172).to_dict()
    summary = checked(report)
    assert summary["versions"][0]["f1"] == pytest.approx(0.75)
    assert "confusion" not in summary["versions"][0]
    report["versions"][0]["f1"] = "<img src=x onerror=alert(1)>"
    with pytest.raises(UnreadableSummary, match="f1 must be a number"):
        checked(report)
    assert np.isfinite(summary["versions"][0]["f1_interval_95"]).all()
