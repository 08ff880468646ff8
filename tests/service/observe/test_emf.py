"""CloudWatch Embedded Metric Format lines: checked against the format's specification (as a
JSON Schema plus its cross-references), in-process and from a real Gunicorn master."""

from __future__ import annotations

import json
import logging
import struct
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from ml.data import load_dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.drift import BINS, MIN_LIVE_ROWS, TRACKED
from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN, AUTH
from ml.testing.processes import EVAL_DATA
from ml.testing.server import PREDICT_BODY, once, server_env, serving
from service.observe.emf import NAMESPACE, EmfReporter, emf_logger, start_emf_thread
from service.observe.metrics import Metrics
from service.observe.multiprocess import read_worker_families

# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
]  # fmt: skip
EMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "items": {"type": "string", "minLength": 1},
                                    "maxItems": 30,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 1024,
                                        },
                                        "Unit": {"enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def check_emf(document: dict[str, Any]) -> None:
    """The schema, and what it cannot say: every dimension a string member of the root, every
    metric a number (or up to 100 numbers) there."""
    jsonschema.validate(document, EMF_SCHEMA)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(document.get(name), str), f"dimension {name} has no value"
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values), (
                f"metric {metric['Name']} is {value!r}"
            )


def test_the_checker_catches_what_cloudwatch_would_drop() -> None:
    good: dict[str, Any] = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [
                {"Namespace": "N", "Dimensions": [["Service"]], "Metrics": [{"Name": "M"}]}
            ],
        },
        "Service": "s",
        "M": 1,
    }
    check_emf(good)
    for broken in (
        {k: v for k, v in good.items() if k != "M"},  # a metric without a value
        {k: v for k, v in good.items() if k != "Service"},  # a dimension without a value
        good | {"M": "1"},
        good | {"_aws": good["_aws"] | {"Timestamp": "now"}},
    ):
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            check_emf(broken)


def test_a_document_counts_since_the_last_and_reports_drift(
    strong_files: dict[str, bytes],
) -> None:
    metrics = Metrics()
    reporter = EmfReporter("fraud-api", metrics.families)
    bundle = load_bundle(strong_files)
    assert bundle.drift_reference is not None
    metrics.set_drift_reference(bundle.drift_reference)

    first = reporter.document(now_ms=1_763_780_000_000)
    check_emf(first)
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
    assert first["ReloadFailures"] == 0
    assert "ScorePSI" not in first  # no live rows yet: no value, rather than a made-up one

    metrics.count_predictions(np.array([0.1, 0.9, 0.2]), np.array([False, True, False]))
    metrics.reloads.labels("api", "failure").inc()
    metrics.reloads.labels("poll", "failure").inc()
    metrics.reloads.labels("api", "success").inc()
    counts = np.zeros((len(TRACKED), BINS), dtype=np.int64)
    counts[:, 9] = MIN_LIVE_ROWS - 1  # every series in its top bin: far from the reference
    metrics.publish_drift_window(counts)
    too_few = reporter.document()
    check_emf(too_few)
    assert too_few["Predictions"] == 3
    assert too_few["ReloadFailures"] == 2
    assert "ScorePSI" not in too_few  # 999 rows: too few to speak of drift
    counts[:, 9] = MIN_LIVE_ROWS
    metrics.publish_drift_window(counts)

    second = reporter.document()
    check_emf(second)
    assert second["Predictions"] == 0  # each counted once, by the document before
    assert second["ReloadFailures"] == 0
    assert second["ScorePSI"] > 0.2
    assert second["MaxInputPSI"] > 0.2
    assert second["MaxInputPSIFeature"] in TRACKED
    assert second["DriftLiveRows"] == MIN_LIVE_ROWS


def test_the_gunicorn_master_writes_emf_lines_cloudwatch_accepts(
    tmp_path: Path,
    s3_store: S3Store,
    strong_files: dict[str, bytes],
    bundle_files: dict[str, bytes],
) -> None:
    promote_files(s3_store, strong_files)
    env = server_env(s3_store, FRAUD_EMF_INTERVAL_S="0.3", FRAUD_EMF_SERVICE="fraud-test")
    with serving(tmp_path, env) as server:
        for _ in range(20):
            assert once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)[0] == 200
        rows = load_dataset(EVAL_DATA).X[:MIN_LIVE_ROWS].tolist()
        batch = json.dumps({"transactions": rows}).encode()
        assert once(server.port, "POST", "/predict/batch", batch, AUTH)[0] == 200
        promote_files(s3_store, bundle_files, sign=False)  # refused: a reload failure
        assert once(server.port, "POST", "/reload", headers=ADMIN)[0] == 502
        deadline = time.monotonic() + 15.0
        while True:
            documents = [
                json.loads(line) for line in server.log().splitlines() if line.startswith('{"_aws"')
            ]
            failures = sum(d["ReloadFailures"] for d in documents)
            predictions = sum(d["Predictions"] for d in documents)
            # Drift counts reach the master on each worker's next 0.2 s tick, after the
            # prediction counters: wait for both.
            live_rows = max((d.get("DriftLiveRows", 0) for d in documents), default=0)
            expected = 20 + MIN_LIVE_ROWS
            if (
                failures >= 1
                and predictions == expected
                and live_rows >= expected
                and any("ScorePSI" in d for d in documents)
            ):
                break
            assert time.monotonic() < deadline, documents[-3:]
            time.sleep(0.2)
    for document in documents:
        check_emf(document)
        assert document["Service"] == "fraud-test"
    assert failures == 1  # one worker failed; the line counts it once, per interval
    assert live_rows == expected  # every row scored, each counted once


def _write_counter(path: Path, value: float) -> None:
    """What a worker's prometheus_client does with its file: size it, then add a sample (an
    empty file, as a starting worker leaves it for a moment, is what it first creates)."""
    key = mmap_key("fraud_test", "fraud_test_total", [], [], "A test counter.")
    file = MmapedDict(str(path))  # type: ignore[no-untyped-call]
    file.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    file.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def starting_worker_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A metrics directory holding one worker's file as it is created: still empty."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    created = tmp_path / "counter_4242.db"
    created.touch()
    return created


def test_a_file_caught_mid_write_is_read_again(starting_worker_file: Path) -> None:
    pauses: list[float] = []
    with pytest.raises(struct.error):  # still torn at the last attempt: raised, not hidden
        read_worker_families(attempts=3, pause=pauses.append)
    assert len(pauses) == 2

    def worker_finishes(seconds: float) -> None:
        _write_counter(starting_worker_file, 7.0)

    families = read_worker_families(attempts=3, pause=worker_finishes)
    samples = [s for family in families for s in family.samples if s.name == "fraud_test_total"]
    assert [s.value for s in samples] == [7.0]


def test_the_emf_thread_outlives_a_torn_file(starting_worker_file: Path) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    emf_logger().addHandler(handler)
    stop = start_emf_thread("fraud-test", interval_s=0.02)
    try:
        deadline = time.monotonic() + 15.0
        while not any('"emf_failed"' in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)
        _write_counter(starting_worker_file, 1.0)
        while not any(line.startswith('{"_aws"') for line in lines):
            assert time.monotonic() < deadline, lines  # the thread had ended
            time.sleep(0.02)
    finally:
        stop.set()
        emf_logger().removeHandler(handler)
    failed = json.loads(next(line for line in lines if '"emf_failed"' in line))
    assert "unpack" in failed["error"]  # struct.error, named
