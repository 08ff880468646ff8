"""Prometheus metrics, correct across Gunicorn workers.

Under Gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set (by the Gunicorn config, before any worker
imports prometheus_client): every worker writes its samples to files there, the master wipes the
directory at start and marks exited workers dead, and /metrics aggregates all of them. Without
it (tests, a single process) each app gets its own registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric

from ml.runtime.drift import BINS, TRACKED, DriftReference
from ml.runtime.manifest import REFUSAL_REASONS
from service.observe.capture_metrics import CaptureMetrics
from service.observe.multiprocess import (
    DriftCollector,
    DriftStatus,
    drift_status,
    multiprocess_dir,
    multiprocess_registry,
    read_worker_families,
)

# The label values the registry and its background loops use (service/model/registry.py).
RELOAD_TRIGGERS = ("startup", "api", "peer", "poll", "cache")
RELOAD_RESULTS = ("success", "unchanged", "failure")
BACKGROUND_TASKS = ("startup", "peer-watch", "poll")
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode samples live in files; a registry would only double-register.
        self._registry = None if self.multiprocess else CollectorRegistry()
        registry = self._registry
        self.requests = Counter(
            "fraud_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "fraud_http_request_duration_seconds",
            "Time from request start to response end, by route and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "fraud_predictions_total",
            "Scored transactions by predicted label.",
            ["label"],
            registry=registry,
        )
        self.scores = Histogram(
            "fraud_score",
            "Fraud probabilities returned.",
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "fraud_model_info",
            "1 for the model version a worker serves (one series per worker process).",
            ["version"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.batch_rows = Histogram(
            "fraud_microbatch_rows",
            "Rows scored together by one model call of the /predict micro-batcher.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.reloads = Counter(
            "fraud_model_reloads_total",
            "Model load attempts by trigger (startup, api, peer, poll, cache) and result.",
            ["trigger", "result"],
            registry=registry,
        )

        self.background_errors = Counter(
            "fraud_background_errors_total",
            "Unexpected exceptions in a background loop (startup, poll, peer-watch), each "
            "logged with its traceback; the loop was restarted.",
            ["task"],
            registry=registry,
        )
        self.refusals = Counter(
            "fraud_model_refusals_total",
            "Bundles refused on load, by reason (unsigned, untrusted_key, bad_signature, "
            "checksum_mismatch, malformed_serving_form, canary_mismatch, needs_migration, ...).",
            ["reason"],
            registry=registry,
        )

        # Drift: fixed series (one per tracked input and bin), whatever the number of versions
        # served over the process's life. Each worker publishes its own window's counts.
        self.drift_rows = Gauge(
            "fraud_drift_window_rows",
            "Live rows of the drift window (FRAUD_DRIFT_WINDOW_S) in each reference bin "
            "(deciles of the training rows) of each tracked input and the score.",
            ["feature", "bin"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.drift_reference = Gauge(
            "fraud_drift_reference_ratio",
            "The training rows' share of each bin for the served model; 0 when it has none.",
            ["feature", "bin"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.capture = CaptureMetrics(registry)
        if registry is not None:  # in multiprocess mode `multiprocess_registry` derives these
            registry.register(
                DriftCollector(
                    lambda: [*self.drift_rows.collect(), *self.drift_reference.collect()]
                )
            )
        self._drift_cells = [
            [(self.drift_reference.labels(f, str(b)), self.drift_rows.labels(f, str(b)))
             for b in range(BINS)]
            for f in TRACKED
        ]  # fmt: skip
        self._drift_published = np.full((len(TRACKED), BINS), -1, dtype=np.int64)
        # Every known label set at 0 from the start: Prometheus' increase() sees a counter's
        # first event only if the series existed before it.
        for trigger in RELOAD_TRIGGERS:
            for result in RELOAD_RESULTS:
                self.reloads.labels(trigger, result)
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)
        for task in BACKGROUND_TASKS:
            self.background_errors.labels(task)

        # Labelled children, made once: `labels()` costs a lock and a tuple on every call.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._score_bounds = np.asarray(self.scores._upper_bounds, dtype=np.float64)  # ends at +Inf
        self._fraud = self.predictions.labels("fraud")
        self._legit = self.predictions.labels("legit")

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, status),
                self.latency.labels(route, status),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_prediction(self, probability: float, is_fraud: bool) -> None:
        (self._fraud if is_fraud else self._legit).inc()
        self.scores.observe(probability)

    def count_predictions(self, probabilities: np.ndarray, flags: np.ndarray) -> None:
        """Many predictions at once: the same series as `count_prediction` row by row.

        Row by row, a 1,000-row batch cost 5.2 ms of metric updates under Gunicorn (each update
        writes the multiprocess mmap), more than scoring it (3.2 ms). Here each series is
        updated once: the counters by their totals, the score histogram bucket by bucket
        through the same per-bucket values `Histogram.observe` increments (its `_buckets` and
        `_sum`; tests/service/observe/test_metrics.py holds the two ways equal)."""
        n_fraud = int(np.count_nonzero(flags))
        if n_fraud:
            self._fraud.inc(n_fraud)
        if flags.size - n_fraud:
            self._legit.inc(flags.size - n_fraud)
        counts = np.bincount(
            np.searchsorted(self._score_bounds, probabilities, side="left"),
            minlength=len(self._score_bounds),
        )
        for bucket, count in zip(self.scores._buckets, counts.tolist(), strict=True):
            if count:
                bucket.inc(count)
        self.scores._sum.inc(float(np.sum(probabilities)))

    def set_model_version(self, version: str, previous: str | None) -> None:
        if previous is not None and previous != version:
            self.model_info.labels(previous).set(0)
        self.model_info.labels(version).set(1)

    def set_drift_reference(self, reference: DriftReference | None) -> None:
        """The served model's reference shares (all 0: no reference, nothing to compare)."""
        shares = np.zeros((len(TRACKED), BINS)) if reference is None else reference.expected
        for row, values in zip(self._drift_cells, shares.tolist(), strict=True):
            for (reference_cell, _), share in zip(row, values, strict=True):
                reference_cell.set(share)

    def publish_drift_window(self, counts: np.ndarray) -> None:
        """This worker's window counts (tracked, BINS); only the cells that changed are
        written (each write is a locked write to the multiprocess file).

        The first series is written last. Readers take the live rows from it (`drift_status`)
        and read the file front to back, where it sits first (its cells were made first): a
        reader that sees a window's live rows sees every other series of that window or a newer
        one, never a window half written (a scrape then derived PSI from two windows)."""
        changed = np.nonzero(counts != self._drift_published)
        for i, b in reversed(list(zip(*changed, strict=True))):
            self._drift_cells[i][b][1].set(int(counts[i, b]))
        self._drift_published = counts.copy()

    def families(self) -> Iterable[Metric]:
        """Every sample: all workers' (multiprocess mode), or this process's."""
        if self._registry is None:
            return read_worker_families()
        return self._registry.collect()

    def drift_status(self) -> DriftStatus | None:
        """PSI over all workers' windows (this process alone outside Gunicorn)."""
        return drift_status(self.families())

    def render(self) -> tuple[bytes, str]:
        registry = self._registry if self._registry is not None else multiprocess_registry()
        return generate_latest(registry), CONTENT_TYPE_LATEST
