"""Prometheus metrics, correct across Gunicorn workers.

Under Gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set (by the Gunicorn config, before any worker
imports prometheus_client): every worker writes its samples to files there, the master wipes the
directory at start and marks exited workers dead, and /metrics aggregates all of them. Without
it (tests, a single process) each app gets its own registry.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_wsgi_server
from prometheus_client.multiprocess import MultiProcessCollector

from ml.runtime.drift import BINS, TRACKED, DriftReference, psi

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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
            "Model load attempts by trigger (startup, api, peer, poll) and result.",
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

        self.drift_rows = Counter(
            "fraud_drift_rows_total",
            "Live rows counted into each reference bin (deciles of the training rows) of each "
            "tracked input and the score, by model version.",
            ["model_version", "feature", "bin"],
            registry=registry,
        )
        self.drift_reference = Gauge(
            "fraud_drift_reference_ratio",
            "The training rows' share of each bin; -1 once the worker serves another version.",
            ["model_version", "feature", "bin"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        if registry is not None:  # in multiprocess mode `multiprocess_registry` derives these
            registry.register(
                DriftCollector(
                    lambda: [*self.drift_rows.collect(), *self.drift_reference.collect()]
                )
            )

        # Labelled children, made once: `labels()` costs a lock and a tuple on every call.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._drift_children: dict[str, list[list[Any]]] = {}
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
        `_sum`; tests/service/test_metrics.py holds the two ways equal)."""
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

    def set_drift_reference(
        self, version: str, reference: DriftReference | None, previous: str | None
    ) -> None:
        """Publish the served version's reference shares; mark the one served before as
        no longer served (-1), so PSI is derived only for versions some worker serves."""
        if previous is not None and previous != version:
            for feature in TRACKED:
                for b in range(BINS):
                    self.drift_reference.labels(previous, feature, str(b)).set(-1)
        if reference is None:
            return
        for i, feature in enumerate(TRACKED):
            for b, share in enumerate(reference.expected[i].tolist()):
                self.drift_reference.labels(version, feature, str(b)).set(share)

    def count_drift(self, version: str, counts: np.ndarray) -> None:
        """Add (tracked, BINS) live-row counts to the version's bins."""
        children = self._drift_children.get(version)
        if children is None:
            children = [
                [self.drift_rows.labels(version, feature, str(b)) for b in range(BINS)]
                for feature in TRACKED
            ]
            self._drift_children[version] = children
        for i, b in zip(*np.nonzero(counts), strict=True):
            children[i][b].inc(int(counts[i, b]))

    def families(self) -> Iterable[Metric]:
        """Every sample: all workers' (multiprocess mode), or this process's."""
        if self._registry is None:
            return MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call,no-any-return]
        return self._registry.collect()

    def drift_status(self) -> dict[str, DriftStatus]:
        """PSI per served version, over all workers (this process alone outside Gunicorn)."""
        return drift_status(self.families())

    def render(self) -> tuple[bytes, str]:
        registry = self._registry if self._registry is not None else multiprocess_registry()
        return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass
class DriftStatus:
    live_rows: int
    psi: dict[str, float | None] = field(default_factory=dict)  # None: no live row yet


def drift_status(families: Iterable[Metric]) -> dict[str, DriftStatus]:
    """PSI of each tracked series for every version some live worker serves, from the bin
    counters and reference shares (samples of one process or aggregated over all)."""
    counts: dict[str, np.ndarray] = {}
    shares: dict[str, np.ndarray] = {}
    index = {name: i for i, name in enumerate(TRACKED)}
    for family in families:
        if family.name not in ("fraud_drift_rows", "fraud_drift_reference_ratio"):
            continue
        into = counts if family.name == "fraud_drift_rows" else shares
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = sample.labels
            table = into.setdefault(labels["model_version"], np.zeros((len(TRACKED), BINS)))
            table[index[labels["feature"]], int(labels["bin"])] += sample.value
    status = {}
    for version, expected in shares.items():
        if expected.min() < 0:  # no live worker serves it any more
            continue
        live = counts.get(version, np.zeros_like(expected))
        values = psi(expected, live)
        status[version] = DriftStatus(
            live_rows=int(live[0].sum()),
            psi={
                name: None if math.isnan(v) else round(v, 6)
                for name, v in zip(TRACKED, values.tolist(), strict=True)
            },
        )
    return status


class DriftCollector:
    """Prometheus families derived at scrape time: `fraud_drift_psi` per version and tracked
    series, and `fraud_drift_live_rows`, the rows they rest on."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        return []  # derived: nothing to check for name clashes at registration

    def collect(self) -> Iterator[Metric]:
        yield from drift_families(drift_status(self._families()))


def drift_families(status: dict[str, DriftStatus]) -> Iterator[Metric]:
    psi_family = GaugeMetricFamily(
        "fraud_drift_psi",
        "Population stability of each tracked input (Time as time of day) and of the score "
        "against the training rows, over all workers: > 0.2 is drift.",
        labels=["model_version", "feature"],
    )
    rows_family = GaugeMetricFamily(
        "fraud_drift_live_rows",
        "Live rows the PSI values rest on.",
        labels=["model_version"],
    )
    for version, entry in status.items():
        rows_family.add_metric([version], entry.live_rows)
        for name, value in entry.psi.items():
            if value is not None:
                psi_family.add_metric([version, name], value)
    yield psi_family
    yield rows_family


class _WithDrift:
    """Every worker's samples from PROMETHEUS_MULTIPROC_DIR, plus the drift families derived
    from them: one read of the files per scrape."""

    def __init__(self) -> None:
        self._files = MultiProcessCollector(None)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        families = list(self._files.collect())  # type: ignore[no-untyped-call]
        yield from families
        yield from drift_families(drift_status(families))


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every worker's samples from PROMETHEUS_MULTIPROC_DIR."""
    registry = CollectorRegistry()
    registry.register(_WithDrift())
    return registry


@dataclass
class MetricsServer:
    """Prometheus text for every worker, served by the Gunicorn master on a port of its own
    (FRAUD_METRICS_PORT). It reads the workers' multiprocess files, so it answers even while
    every worker is busy or restarting."""

    httpd: WSGIServer
    thread: threading.Thread

    @classmethod
    def start(cls, host: str, port: int) -> MetricsServer:
        httpd, thread = start_wsgi_server(port, addr=host, registry=multiprocess_registry())
        return cls(httpd, thread)

    def forget_in_child(self) -> None:
        """In a forked worker: close this process's copy of the listening socket only."""
        self.httpd.socket.close()
