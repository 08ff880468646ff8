"""`make bench-live`: `fraudctl evaluate --live` over a decision log of a million rows.

Writes a local store as the shipper would (1,000,000 captured rows in 200 files of 5,000, two
model versions, over the last 10 days) and labels for 60 % of them (five imports, 1 % of the ids
labelled twice), then times the command end to end, as a subprocess (imports included), three
times; prints the medians and the report's first lines.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml.labels import LabelFile, import_labels, labels_schema
from ml.runtime.capture_files import capture_key, parquet_bytes, records_to_table
from ml.runtime.capture_records import decode, encode_many
from ml.runtime.local_store import LocalStore

FILES = 200
ROWS_PER_FILE = 5_000
LABELLED_SHARE = 0.6
PREVALENCE = 0.00172


def write_decision_log(store: LocalStore, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    now = time.time()
    ids: list[str] = []
    truth = []
    for f in range(FILES):
        at = now - 10 * 86400 * (1 - f / FILES)
        version = "20261120T000000Z-aaaaaaaaaa" if f < FILES // 2 else "20261127T000000Z-bbbbbbbbbb"
        y = rng.random(ROWS_PER_FILE) < PREVALENCE
        scores = np.clip(np.where(y, rng.beta(5, 1.5, y.size), rng.beta(1, 60, y.size)), 0, 1)
        names = [f"tx-{f}-{i}" for i in range(ROWS_PER_FILE)]
        inputs = rng.normal(size=(ROWS_PER_FILE, 30))
        data = encode_many(
            at, f"req{f}", names, version, "0123456789ab", inputs, scores, 0.5, scores >= 0.5
        )
        records, _ = decode(data)
        store.put_if_absent(
            capture_key(at, "bench", "w1", f), parquet_bytes(records_to_table(records))
        )
        ids += names
        truth.append(y)
    return ids, np.concatenate(truth)


def write_labels(
    store: LocalStore, ids: list[str], truth: np.ndarray, rng: np.random.Generator
) -> int:
    import pyarrow as pa

    picked = np.flatnonzero(rng.random(len(ids)) < LABELLED_SHARE)
    again = picked[: picked.size // 100]  # labelled twice: a later verdict
    chosen = np.concatenate([picked, again])
    now = datetime.now(UTC)
    for part in np.array_split(chosen, 5):
        table = pa.table(
            {
                "id": [ids[i] for i in part],
                "label": pa.array(truth[part].astype(np.int8), pa.int8()),
                "labelled_at": [now] * part.size,
                "imported_at": [now] * part.size,
            },
            schema=labels_schema(),
        )
        import_labels(store, LabelFile(table, part.size), None)
    return int(chosen.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="fraud-live-") as tmp_name:
        tmp = Path(tmp_name)
        store = LocalStore(tmp / "store")
        store.root.mkdir()
        began = time.monotonic()
        ids, truth = write_decision_log(store, rng)
        labels = write_labels(store, ids, truth, rng)
        print(f"wrote {len(ids):,} captured rows in {FILES} files and {labels:,} labels "
              f"in {time.monotonic() - began:.0f} s", flush=True)  # fmt: skip
        reports = str(tmp / "reports")
        command = [sys.executable, "-m", "ml.cli", "evaluate", "--live", "--since", "30d",
                   "--store", store.uri, "--reports-dir", reports, "--no-publish"]  # fmt: skip
        times = []
        for _ in range(args.runs):
            started = time.monotonic()
            run = subprocess.run(command, capture_output=True, text=True, check=True)
            times.append(time.monotonic() - started)
        print(run.stdout)
        median = statistics.median(times)
        print(f"fraudctl evaluate --live over {len(ids):,} rows: median {median:.1f} s "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")  # fmt: skip


if __name__ == "__main__":
    main()
