"""`make bench`: the service measured as a whole process, the way it runs in production.

Starts a moto S3 server and `fraudctl serve` (2 workers, the default model) on 127.0.0.1, drives
them with wrk (or a Python client, said in the output), and prints one table, also written to
bench/results/latest.json:

- POST /predict at concurrency 1 and 32: requests/s, p50, p99, non-2xx; the same for a bare
  FastAPI floor app under the same Gunicorn/Uvicorn worker, and ours / floor. Both servers run
  side by side and are measured in alternating rounds, so a change in the shared machine's
  background load falls on both alike; each figure is the median over the rounds, the ratio the
  median of the rounds' ratios;
- POST /predict/batch with 1000 rows: rows/s (median of the rounds);
- p99 and non-2xx at c=32 while promote + reload cycles run, against the steady p99;
- cold start: process start to /health/ready 200 (median of 3), and to every worker loaded;
- RSS of each worker;
- explanations: in-process (`bench.explain`: one row with `explain: 5`, p50/p99; 1,000 rows)
  and over HTTP (/predict with explain 5 at c=1, /predict/batch of 1,000 rows with explain 5);
- drift counting's cost: the same model served with and without its drift reference (two
  servers, alternating rounds at c=32), and the console page's size;
- the decision log's cost and SIGTERM count (`bench.capture`).

Bounded in time (about 4 minutes), 127.0.0.1 only; it stops what it started, by PID.

This script owns the run (servers, rounds, JSON); what it measures with is in `bench.measure`,
the table it prints in `bench.report`, the load generator in `bench.loadgen`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from bench.capture import capture_off_and_on
from bench.explain import console_bytes, drift_in_process, explain_in_process
from bench.loadgen import LoadResult, run_load, wrk_available
from bench.measure import (
    ADMIN_KEY,
    API_KEY,
    REPO,
    client_scoring,
    cold_starts,
    floor_server,
    median_ratio,
    ratios,
    reload_cycles,
    rows_per_s,
    table_row,
    without_drift_reference,
    worker_rss_mb,
    workers_cpu_s,
)
from bench.report import cpu_model, render_markdown
from ml.data import load_dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files, signing_environment
from ml.testing.processes import (
    AWS_ENV,
    DEV_DATA,
    start_moto,
    stop_process,
)
from ml.testing.server import ServiceProcess
from ml.train import train_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per steady load run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating floor/ours runs per concurrency"
    )
    parser.add_argument("--reload-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--serve-python",
        default=sys.executable,
        help="interpreter of a serving-only environment (make bench makes one)",
    )
    args = parser.parse_args()
    os.environ.update(AWS_ENV)
    tool = "wrk" if wrk_available() else "python (wrk not installed)"
    print(f"load generator: {tool}; {os.cpu_count()} cores shared with the servers", flush=True)

    data = load_dataset(DEV_DATA)
    bundles = [train_bundle(data, seed=seed) for seed in (0, 1, 2)]
    row_features = data.X[int(np.flatnonzero(data.y == 1)[0])].tolist()
    predict_body = json.dumps({"features": row_features}).encode()
    batch_body = json.dumps({"transactions": data.X[:1000].tolist()}).encode()
    explain_body = json.dumps({"features": row_features, "explain": 5}).encode()
    explain_batch_body = json.dumps({"transactions": data.X[:1000].tolist(), "explain": 5}).encode()

    results: dict[str, Any] = {
        "explain_in_process": explain_in_process(load_bundle(bundles[0]), data.X),
        "drift_in_process": drift_in_process(load_bundle(bundles[0]), data.X),
        "console_bytes": console_bytes(),
    }
    print(f"explanations in-process: {results['explain_in_process']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # Promotions sign bundles and the service trusts only signed ones, as in production.
        os.environ.update(signing_environment(tmp / "keys"))
        moto, endpoint = start_moto(tmp / "moto.log")
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        floor = None
        server = None
        variants: dict[str, ServiceProcess] = {}
        try:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            boto3.client("s3").create_bucket(Bucket=bucket)
            store = S3Store(bucket, "fraud")
            promote_files(store, bundles[0])
            env = {
                "FRAUD_STORE_URI": store.uri,
                "FRAUD_API_KEYS": API_KEY,
                "FRAUD_ADMIN_API_KEYS": ADMIN_KEY,
                "FRAUD_MODEL_POLL_INTERVAL_S": "0",
                "FRAUD_LOG_LEVEL": "info",
            }

            # The serving environment finds the project's code through PYTHONPATH, as the
            # image does (PYTHONPATH=/app).
            env["PYTHONPATH"] = str(REPO)
            ready, loaded = cold_starts(tmp, env, runs=3, python=args.serve_python)
            results["cold_start_s"] = {
                "ready_median": round(statistics.median(ready), 2),
                "all_workers_loaded_median": round(statistics.median(loaded), 2),
                "ready_all": [round(x, 2) for x in ready],
            }
            print(f"cold start: {results['cold_start_s']}", flush=True)

            floor, floor_port = floor_server(tmp, args.serve_python)
            server = ServiceProcess(tmp, env, python=args.serve_python).start()
            server.wait_ready(60)
            run_load(floor_port, "/predict", predict_body, "", 32, 2)  # warm-up
            run_load(server.port, "/predict", predict_body, API_KEY, 32, 2)
            floor_runs: dict[int, list[LoadResult]] = {1: [], 32: []}
            ours: dict[int, list[LoadResult]] = {1: [], 32: []}
            for c in (1, 32):
                for _ in range(args.rounds):
                    floor_runs[c].append(
                        run_load(floor_port, "/predict", predict_body, "", c, args.seconds)
                    )
                    ours[c].append(
                        run_load(server.port, "/predict", predict_body, API_KEY, c, args.seconds)
                    )
            stop_process(floor)
            floor = None

            # Drift counting's cost: two fresh servers, the same model with and without its
            # drift reference, in alternating rounds; rates, and the workers' CPU per request
            # (steadier than rates: the load generator's share of the cores drops out).
            bare = S3Store(bucket, "fraud-unmonitored")
            promote_files(bare, without_drift_reference(bundles[0]))
            for variant_store, name in ((bare, "off"), (store, "on")):
                variants[name] = ServiceProcess(
                    tmp, env | {"FRAUD_STORE_URI": variant_store.uri}, python=args.serve_python
                ).start()
            drift_runs: dict[str, list[LoadResult]] = {"off": [], "on": []}
            drift_cpu: dict[str, list[float]] = {"off": [], "on": []}
            for variant in variants.values():
                variant.wait_ready(60)
                run_load(variant.port, "/predict", predict_body, API_KEY, 32, 2)  # warm-up
            for round_number in range(args.rounds):
                order = list(variants.items())
                for name, variant in order if round_number % 2 else order[::-1]:
                    assert variant.proc is not None
                    before = workers_cpu_s(variant.proc.pid)
                    run = run_load(
                        variant.port, "/predict", predict_body, API_KEY, 32, args.seconds
                    )
                    drift_runs[name].append(run)
                    drift_cpu[name].append(
                        (workers_cpu_s(variant.proc.pid) - before) / run.requests * 1e6
                    )
            for variant in variants.values():
                variant.stop()
            variants.clear()
            capture = capture_off_and_on(
                tmp, env, store, predict_body, args.rounds, args.seconds, args.serve_python
            )

            # In rounds too: two bench runs in a row, one 5 s run each, read 217k and 156k
            # rows/s for the batch (and 41k and 28k explained): the shared machine, not the code.
            ours_only = {
                "explain_one": ("/predict", explain_body, 1),
                "explain_batch": ("/predict/batch", explain_batch_body, 2),
                "batch": ("/predict/batch", batch_body, 2),
            }
            alone: dict[str, list[LoadResult]] = {name: [] for name in ours_only}
            for _ in range(args.rounds):
                for name, (path, body, c) in ours_only.items():
                    alone[name].append(run_load(server.port, path, body, API_KEY, c, args.seconds))
            client_rows_per_s = client_scoring(server.port, data.X.tolist())
            assert server.proc is not None
            rss = worker_rss_mb(server.proc.pid)

            stop = threading.Event()
            cycles: list[dict[str, Any]] = []
            cycler = threading.Thread(
                target=reload_cycles, args=(server.port, store, bundles, stop, cycles)
            )
            cycler.start()
            try:
                during = run_load(
                    server.port, "/predict", predict_body, API_KEY, 32, args.reload_seconds
                )
            finally:
                stop.set()
                cycler.join()
        finally:
            if server is not None:
                server.stop()
            for variant in variants.values():
                variant.stop()
            if floor is not None:
                stop_process(floor)
            stop_process(moto)

    table = [
        table_row("floor /predict", floor_runs[1]),
        table_row("floor /predict", floor_runs[32]),
        table_row("ours /predict", ours[1]),
        table_row("ours /predict", ours[32]),
        table_row("ours /predict/batch (1000 rows)", alone["batch"]),
        table_row("ours /predict, explain 5", alone["explain_one"]),
        table_row("ours /predict/batch (1000 rows), explain 5", alone["explain_batch"]),
        table_row("ours /predict, no drift reference", drift_runs["off"]),
        table_row("ours /predict, drift counted", drift_runs["on"]),
        table_row("ours /predict during reloads", [during]),
    ]
    steady_p99 = table[3]["p99_ms"]
    results |= {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "load_generator": tool,
        "server_environment": "serving lock only"
        if args.serve_python != sys.executable
        else "development environment (pandas installed: workers are larger)",
        "table": table,
        "rounds": args.rounds,
        "ratio_ours_to_floor_c32": median_ratio(ours[32], floor_runs[32]),
        "ratio_ours_to_floor_c1": median_ratio(ours[1], floor_runs[1]),
        "ratios_by_round_c32": ratios(ours[32], floor_runs[32]),
        "batch_rows_per_s": rows_per_s(alone["batch"]),
        "batch_rows_per_s_by_round": [rows_per_s([r]) for r in alone["batch"]],
        "explain_batch_rows_per_s_by_round": [rows_per_s([r]) for r in alone["explain_batch"]],
        "explain_batch_rows_per_s": rows_per_s(alone["explain_batch"]),
        "drift_on_to_off_c32": median_ratio(drift_runs["on"], drift_runs["off"]),
        "drift_ratios_by_round_c32": ratios(drift_runs["on"], drift_runs["off"]),
        "drift_worker_cpu_us_per_request": {
            name: [round(x, 1) for x in values] for name, values in drift_cpu.items()
        },
        "drift_share_of_worker_cpu": results["drift_in_process"]["us_per_request_one_row_batches"]
        / statistics.median(drift_cpu["off"]),
        "drift_cpu_on_to_off": round(
            statistics.median(drift_cpu["on"]) / statistics.median(drift_cpu["off"]), 3
        ),
        "client_score_rows_per_s": round(client_rows_per_s),
        "reload": {
            "cycles": len(cycles),
            "non_2xx": during.non_2xx,
            "socket_errors": during.socket_errors,
            "p99_ms": round(during.p99_ms, 3),
            "steady_p99_ms": steady_p99,
            "p99_ratio": round(during.p99_ms / steady_p99, 2),
            "reload_responses": cycles,
        },
        "worker_rss_mb": rss,
        "capture": capture.summary(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render_markdown(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
