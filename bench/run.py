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
  servers, alternating rounds at c=32), and the console page's size.

Bounded in time (about 4 minutes), 127.0.0.1 only; it stops what it started, by PID.

Over 300 lines: one script that owns the whole run (servers, rounds, table, JSON), so the
figures in the README come from one place; the load generator is `bench.loadgen`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from bench.explain import console_bytes, drift_in_process, explain_in_process
from bench.loadgen import LoadResult, run_load, wrk_available
from examples.client import FraudClient
from ml.data import load_dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.s3_store import S3Store
from ml.train import train_bundle
from tests.support.bundles import promote_files, signing_environment
from tests.support.processes import (
    AWS_ENV,
    DEV_DATA,
    child_pids,
    free_port,
    start_moto,
    stop_process,
    wait_for_port,
)
from tests.support.server import ServiceProcess, once

REPO = Path(__file__).resolve().parent.parent
API_KEY, ADMIN_KEY = "bench-key", "bench-admin"


def _workers(master_pid: int) -> Iterator[tuple[Path, list[str]]]:
    """Each worker of `master_pid`: its /proc directory and the fields of its `stat` after the
    command name."""
    for pid in child_pids(master_pid):
        directory = Path("/proc") / str(pid)
        try:
            yield directory, (directory / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile


def workers_cpu_s(master_pid: int) -> float:
    """User + system CPU seconds of a Gunicorn master's workers so far."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in _workers(master_pid))
    return ticks / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


def worker_rss_mb(master_pid: int) -> list[float]:
    sizes = []
    for directory, _ in _workers(master_pid):
        try:
            status = (directory / "status").read_text()
        except OSError:
            continue
        rss_kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        sizes.append(round(rss_kb / 1024.0, 1))
    return sorted(sizes)


def cold_starts(
    tmp: Path, env: dict[str, str], runs: int, python: str
) -> tuple[list[float], list[float]]:
    ready, all_loaded = [], []
    for _ in range(runs):
        server = ServiceProcess(tmp, env, python=python).start()
        started = time.monotonic()
        try:
            ready.append(server._wait_first_ready(60))
            server.wait_ready(60)
            all_loaded.append(time.monotonic() - started)
        finally:
            server.stop()
    return ready, all_loaded


def floor_server(tmp: Path, python: str) -> tuple[subprocess.Popen[bytes], int]:
    """The floor app under the same Gunicorn and worker class, from the same environment."""
    port = free_port()
    log = open(tmp / "floor.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            str(Path(python).parent / "gunicorn"),
            "--workers",
            "2",
            "--worker-class",
            "service.server.worker.FraudUvicornWorker",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--keep-alive",
            "75",
            "bench.floor_app:app",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    wait_for_port(port)
    time.sleep(1.0)  # both workers booted
    return proc, port


def reload_cycles(
    port: int,
    store: S3Store,
    bundles: list[dict[str, bytes]],
    stop: threading.Event,
    log: list[dict[str, Any]],
) -> None:
    cycle = 0
    while not stop.wait(2.0):
        cycle += 1
        promote_files(store, bundles[cycle % len(bundles)])
        status, body = once(port, "POST", "/reload", headers={"X-API-Key": ADMIN_KEY})
        log.append(
            {
                "status": status,
                "took_ms": body.get("took_ms") if status == 200 else None,
                "workers": f"{body.get('workers_confirmed')}/{body.get('workers_total')}",
            }
        )


def without_drift_reference(files: dict[str, bytes]) -> dict[str, bytes]:
    """The same bundle as a version made before drift monitoring: served, not counted."""
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["drift_reference"] = None
    return {**files, MANIFEST_FILE: json.dumps(manifest).encode()}


def client_scoring(port: int, rows: list[list[float]]) -> float:
    """Rows/s through the typed client (examples/client.py), one caller: what a user's script
    sees, JSON encoding and the batching included."""
    with FraudClient(f"http://127.0.0.1:{port}", API_KEY) as client:
        client.score(rows[:1000])  # warm-up
        started = time.perf_counter()
        predictions = client.score(rows)
        took = time.perf_counter() - started
    assert len(predictions) == len(rows)
    return len(rows) / took


def table_row(name: str, runs: list[LoadResult]) -> dict[str, Any]:
    """One table row for one or more runs: medians of rate and latencies, errors summed."""
    return {
        "case": name,
        "concurrency": runs[0].concurrency,
        "requests_per_s": round(statistics.median(r.rps for r in runs), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "requests": sum(r.requests for r in runs),
        "requests_per_s_by_round": [round(r.rps, 1) for r in runs],
    }


def ratios(ours: list[LoadResult], floor: list[LoadResult]) -> list[float]:
    return [round(o.rps / f.rps, 3) for o, f in zip(ours, floor, strict=True)]


def rows_per_s(runs: list[LoadResult], rows_per_request: int = 1000) -> int:
    """Rows scored a second by batch requests: the median over `runs`."""
    return round(statistics.median(r.rps for r in runs) * rows_per_request)


def median_ratio(ours: list[LoadResult], floor: list[LoadResult]) -> float:
    return round(statistics.median(ratios(ours, floor)), 3)


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
            "cpu": _cpu_model(),
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
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render_markdown(results))
    print(f"\nwritten to {args.out}")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| case | c | req/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['case']} | {r['concurrency']} | {r['requests_per_s']:,} | {r['p50_ms']} | "
        f"{r['p99_ms']} | {r['non_2xx'] + r['socket_errors']} |"
        for r in results["table"]
    ]
    reload = results["reload"]
    explained = results["explain_in_process"]
    lines += [
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| c=32 throughput, ours / floor (median of {results['rounds']} rounds) | "
        f"{results['ratio_ours_to_floor_c32']} "
        f"({', '.join(str(x) for x in results['ratios_by_round_c32'])}) |",
        f"| batch of 1000 rows (median of {results['rounds']} rounds) | "
        f"{results['batch_rows_per_s']:,} rows/s "
        f"({', '.join(f'{x:,}' for x in results['batch_rows_per_s_by_round'])}) |",
        f"| batch of 1000 rows with explain 5, HTTP (median of {results['rounds']} rounds) | "
        f"{results['explain_batch_rows_per_s']:,} rows/s "
        f"({', '.join(f'{x:,}' for x in results['explain_batch_rows_per_s_by_round'])}) |",
        f"| explain 5, one row, in-process: p50 / p99 | "
        f"{explained['one_row_explain5_p50_ms']} / {explained['one_row_explain5_p99_ms']} ms |",
        f"| explain 5, 1000 rows, in-process | "
        f"{explained['rows_1000_explain5_rows_per_s']:,} rows/s |",
        f"| c=32 throughput, drift counted / not (median of {results['rounds']} rounds) | "
        f"{results['drift_on_to_off_c32']} "
        f"({', '.join(str(x) for x in results['drift_ratios_by_round_c32'])}) |",
        f"| worker CPU per request, drift counted / not | {results['drift_cpu_on_to_off']} "
        f"({statistics.median(results['drift_worker_cpu_us_per_request']['on']):.1f} / "
        f"{statistics.median(results['drift_worker_cpu_us_per_request']['off']):.1f} us) |",
        f"| drift counting in-process, per request (1-row micro-batches) | "
        f"{results['drift_in_process']['us_per_request_one_row_batches']} us, "
        f"{results['drift_share_of_worker_cpu']:.1%} of a request's worker CPU |",
        f"| console page with its files | {results['console_bytes']['total']:,} bytes |",
        f"| client.score, 1 caller | {results['client_score_rows_per_s']:,} rows/s |",
        f"| during {reload['cycles']} promote + reload cycles: non-2xx | {reload['non_2xx']} |",
        f"| p99 during reloads / steady p99 | {reload['p99_ratio']} "
        f"({reload['p99_ms']} / {reload['steady_p99_ms']} ms) |",
        "| cold start to /health/ready (median of 3) | "
        f"{results['cold_start_s']['ready_median']} s |",
        f"| RSS per worker | {', '.join(f'{x} MB' for x in results['worker_rss_mb'])} |",
        "",
        f"{results['date']}, {results['machine']['cpus']} x {results['machine']['cpu']}, "
        f"Python {results['machine']['python']}, load generator: {results['load_generator']} "
        f"on the same cores; server: {results['server_environment']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
