"""In-process figures for explanations and the console (used by `bench.run`).

Explanations are timed the way the data plane makes them (`ModelBundle.explain`, then
`top_reasons`), without HTTP, so the figure is the explainer's own cost: one row with
`explain: 5` (p50 and p99 over 2,000 calls) and 1,000 rows at once (median of 15).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.runtime.bundle import ModelBundle
from service.reasons import top_reasons

UI_DIR = Path(__file__).resolve().parent.parent / "service" / "ui"


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


def console_bytes() -> dict[str, int]:
    """What the console's page loads: the page, its two files and the examples it fetches."""
    sizes = {path.name: path.stat().st_size for path in sorted(UI_DIR.iterdir())}
    return sizes | {"total": sum(sizes.values())}
