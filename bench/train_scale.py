"""Training at the full dataset's size: 284,807 rows, the real file's schema and prevalence.

Generates the file from the committed sample (rows drawn with replacement, frauds at the real
0.172 %, a little Gaussian noise so rows are not exact copies), runs `fraudctl train` on it
several times as a separate process, and reports the median wall time and peak memory.

    .venv/bin/python -m bench.train_scale [--runs 3] [--rows 284807]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ml.data import load_dataset
from ml.runtime.schema import COLUMNS, PRODUCTION_FRAUDS

REPO = Path(__file__).resolve().parent.parent


def generate(path: Path, rows: int, seed: int = 0) -> None:
    sample = load_dataset(REPO / "data" / "creditcard_train.csv.gz")
    rng = np.random.default_rng(seed)
    n_fraud = round(rows * PRODUCTION_FRAUDS / 284_807)
    fraud = rng.choice(np.flatnonzero(sample.y == 1), size=n_fraud)
    legit = rng.choice(np.flatnonzero(sample.y == 0), size=rows - n_fraud)
    picks = rng.permutation(np.concatenate([fraud, legit]))
    X = sample.X[picks] * (1.0 + rng.normal(0.0, 0.01, size=(rows, sample.X.shape[1])))
    X[:, 0] = np.sort(rng.uniform(0, 172_792, size=rows)).round()
    X[:, -1] = np.abs(X[:, -1]).round(2)
    y = sample.y[picks]
    with open(path, "w") as out:
        out.write(",".join(f'"{c}"' for c in COLUMNS) + "\n")
        for features, label in zip(X, y, strict=True):
            out.write(",".join(repr(float(v)) for v in features) + f',"{label}"\n')


def run_once(data: Path, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ml.cli", "train", "--data", str(data), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"fraudctl train failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024.0  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=284_807)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "train.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "creditcard_full_size.csv"
        generate(data, args.rows)
        size_mb = data.stat().st_size / 1e6
        runs = [run_once(data, Path(tmp) / f"bundle{i}") for i in range(args.runs)]
    times = [t for t, _ in runs]
    peaks = [m for _, m in runs]
    result = {
        "rows": args.rows,
        "file_mb": round(size_mb, 1),
        "runs": args.runs,
        "train_seconds_median": round(statistics.median(times), 2),
        "train_seconds_all": [round(t, 2) for t in times],
        "peak_rss_mb_median": round(statistics.median(peaks), 1),
        "cpus": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
