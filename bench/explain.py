"""In-process figures for explanations and the console (used by `bench.run`).

Explanations are timed the way the data plane makes them (`ModelBundle.explain`, then
`top_reasons`), without HTTP, so the figure is the explainer's own cost: one row with
`explain: 5` (p50 and p99 over 2,000 calls) and 1,000 rows at once (median of 15). Drift
counting likewise (`drift_in_process`): on a shared 2-core machine its cost is below what two
servers side by side can resolve (rounds differ by 10-25 %), so it is also timed on its own.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.runtime.bundle import ModelBundle
from service.model.drift import DriftMonitor
from service.model.reasons import top_reasons
from service.observe.metrics import Metrics

UI_DIR = Path(__file__).resolve().parent.parent / "service" / "api" / "ui"


def explain_in_process(bundle: ModelBundle, rows: np.ndarray) -> dict[str, Any]:
    one_row, score_only = [], []
    for i in range(2000):
        row = rows[i % len(rows)][None]
        started = time.perf_counter()
        top_reasons(row, bundle.explain(row), 5)
        one_row.append(time.perf_counter() - started)
        started = time.perf_counter()
        bundle.score(row)
        score_only.append(time.perf_counter() - started)
    many = rows[:1000]
    batch = []
    for _ in range(15):
        started = time.perf_counter()
        top_reasons(many, bundle.explain(many), 5)
        batch.append(time.perf_counter() - started)
    return {
        "one_row_explain5_p50_ms": round(float(np.percentile(one_row, 50)) * 1e3, 3),
        "one_row_explain5_p99_ms": round(float(np.percentile(one_row, 99)) * 1e3, 3),
        "one_row_score_only_p50_ms": round(float(np.percentile(score_only, 50)) * 1e3, 3),
        "rows_1000_explain5_rows_per_s": round(len(many) / statistics.median(batch)),
    }


def drift_in_process(bundle: ModelBundle, rows: np.ndarray) -> dict[str, Any]:
    """What drift monitoring adds per request, the way a worker does it: each micro-batch's
    rows kept, counted in bulk on the 0.2 s tick. Worst case: one row per micro-batch (at c=32
    they hold several), 1,000 micro-batches per tick. The counters here are in-process values;
    a worker's multiprocess files add ~0.2 ms per tick (310 increments at most)."""
    metrics = Metrics()
    monitor = DriftMonitor(metrics)
    metrics.set_drift_reference(bundle.drift_reference)
    probabilities = bundle.score(rows)
    singles = [(rows[i : i + 1], probabilities[i : i + 1]) for i in range(1000)]
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        for row, probability in singles:
            monitor.record(bundle, row, probability)
        monitor.flush(bundle)
        runs.append((time.perf_counter() - started) / len(singles))
    return {"us_per_request_one_row_batches": round(statistics.median(runs) * 1e6, 2)}


def console_bytes() -> dict[str, int]:
    """What the console's page loads: the page, its two files and the examples it fetches."""
    sizes = {path.name: path.stat().st_size for path in sorted(UI_DIR.iterdir())}
    return sizes | {"total": sum(sizes.values())}
