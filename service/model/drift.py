"""Counting live rows into the served bundle's drift reference bins, over a sliding window.

Every scored row is kept (a reference to arrays the scoring made anyway) and counted in bulk
on the housekeeping tick (service/app.py, every 0.2 s), not once per micro-batch: binning costs
~13 us per call whatever its size and ~1 us per row in bulk, so at c=32 (micro-batches of a few
rows) per-call counting would have cost ~10 % of a request's CPU, bulk counting ~1 %.

The counts cover the last FRAUD_DRIFT_WINDOW_S (12 buckets; an hour by default), so PSI follows
what the service sees now rather than everything since it started; they start afresh when the
worker serves another model. Each worker publishes its window's counts (`Metrics`), which the
master sums over live workers to derive PSI.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ml.runtime.bundle import ModelBundle
from ml.runtime.drift import BINS, TRACKED, tracked_values
from service.observe.metrics import Metrics

# Count at once rather than keep more than this many rows waiting (~250 KB of arrays).
MAX_PENDING_ROWS = 1000
WINDOW_BUCKETS = 12


class DriftMonitor:
    def __init__(
        self,
        metrics: Metrics,
        window_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self.window_s = window_s
        self._bucket_s = window_s / WINDOW_BUCKETS
        self._buckets = np.zeros((WINDOW_BUCKETS, len(TRACKED), BINS), dtype=np.int64)
        self._latest: int | None = None  # the clock's bucket number of the newest bucket
        self._served: ModelBundle | None = None  # the bundle whose rows the window counts
        self._pending: list[tuple[ModelBundle, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0

    def record(self, bundle: ModelBundle, rows: np.ndarray, probabilities: np.ndarray) -> None:
        """Rows of raw features as scored by `bundle`, and the probabilities it gave them."""
        if bundle.drift_reference is None:
            return
        self._pending.append((bundle, rows, probabilities))
        self._pending_rows += rows.shape[0]
        if self._pending_rows >= MAX_PENDING_ROWS:
            # The window's own bundle, not this one: rows an old bundle scored during a reload
            # must not switch the window back to it (the tick moves it to the new one). Only
            # counted: publishing (310 shared-memory writes, ~0.6 ms) waits for the tick.
            self._count(self._served or bundle)

    def flush(self, served: ModelBundle | None) -> None:
        """Count the waiting rows of the `served` bundle and publish the window."""
        self._count(served)
        self._metrics.publish_drift_window(self._buckets.sum(axis=0))

    def _count(self, served: ModelBundle | None) -> None:
        """Count the waiting rows of the `served` bundle (rows an older one scored just before
        a swap are dropped). A new bundle starts an empty window."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if served is not None and served is not self._served:
            self._served = served
            self._buckets[:] = 0
            self._metrics.set_drift_reference(served.drift_reference)
        self._advance()
        same = [entry for entry in pending if entry[0] is served]
        reference = served.drift_reference if served is not None else None
        if same and reference is not None:
            rows = np.concatenate([entry[1] for entry in same])
            probabilities = np.concatenate([entry[2] for entry in same])
            assert self._latest is not None  # set by _advance
            newest = self._buckets[self._latest % WINDOW_BUCKETS]
            newest += reference.bin_counts(tracked_values(rows, probabilities))

    def _advance(self) -> None:
        """Empty the buckets that have left the window since the last call."""
        now = int(self._clock() // self._bucket_s)
        if self._latest is not None:
            for number in range(max(self._latest + 1, now - WINDOW_BUCKETS + 1), now + 1):
                self._buckets[number % WINDOW_BUCKETS] = 0
        if self._latest is None or now > self._latest:
            self._latest = now
