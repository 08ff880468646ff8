"""`make bench-compare BASELINE=<git ref>`: this tree's service against another commit's in
alternating rounds of one run, so that "figures unchanged" is a ratio measured under the same
conditions rather than two runs minutes apart on a shared machine.

Both servers run from the serving-only environment (.venv-serve), 2 workers each, on the same
signed bundle in one local store; only the source tree differs. Each round starts one server
and then the other (alternating which goes first), and measures its cold start, /predict at
c=32 and /predict/batch (1000 rows), one server at a time. Prints the medians and the median
of the rounds' ratios (this / baseline), and writes bench/results/compare.json.
127.0.0.1 only; it stops what it started, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import run_load
from bench.measure import workers_cpu_s
from ml.data import load_dataset
from ml.runtime.local_store import LocalStore
from ml.testing.bundles import promote_files, signing_environment
from ml.testing.keys import API_KEY
from ml.testing.processes import DEV_DATA, REPO
from ml.testing.server import ServiceProcess, server_env
from ml.train import train_bundle

CASES = (
    "predict_c32_rps",
    "predict_worker_cpu_us",
    "batch_rows_per_s",
    "predict_c32_p99_ms",
    "cold_start_s",
)


def checkout(ref: str, into: Path) -> Path:
    """The baseline's source tree (git worktree, detached), removed at the end."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(into), ref], cwd=REPO, check=True
    )
    return into


def start(tree: Path, tmp: Path, env: dict[str, str], python: str) -> tuple[ServiceProcess, float]:
    """A server whose code comes from `tree` (it is the working directory, so `-m ml.cli` and
    Gunicorn's app import find it first, and on PYTHONPATH), and its seconds from process
    start to /health/ready 200."""
    here = Path.cwd()
    os.chdir(tree)
    try:
        server = ServiceProcess(tmp, env | {"PYTHONPATH": str(tree)}, python=python).start()
    finally:
        os.chdir(here)
    cold_start = server._wait_first_ready(60)
    server.wait_ready(60)
    return server, cold_start


def measure(server: ServiceProcess, bodies: dict[str, bytes], seconds: float) -> dict[str, float]:
    assert server.proc is not None
    cpu_before = workers_cpu_s(server.proc.pid)
    single = run_load(server.port, "/predict", bodies["predict"], API_KEY, 32, seconds)
    cpu_per_request_us = (workers_cpu_s(server.proc.pid) - cpu_before) / single.requests * 1e6
    batch = run_load(server.port, "/predict/batch", bodies["batch"], API_KEY, 2, seconds)
    assert single.non_2xx == batch.non_2xx == 0, (single, batch)
    return {
        "predict_c32_rps": single.rps,
        "predict_c32_p99_ms": single.p99_ms,
        # Steadier than requests/s on a shared machine: the load generator's share drops out.
        "predict_worker_cpu_us": cpu_per_request_us,
        "batch_rows_per_s": batch.rps * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="a git ref: the code to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve-python", default=str(REPO / ".venv-serve" / "bin" / "python"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare.json")
    args = parser.parse_args()
    data = load_dataset(DEV_DATA)
    bodies = {
        "predict": json.dumps({"features": data.X[0].tolist()}).encode(),
        "batch": json.dumps({"transactions": data.X[:1000].tolist()}).encode(),
    }
    with tempfile.TemporaryDirectory(prefix="fraud-compare-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(signing_environment(tmp / "keys"))
        store = LocalStore(tmp / "store")
        promote_files(store, train_bundle(data, seed=0))
        env = server_env(store, FRAUD_LOG_LEVEL="warning")
        baseline_tree = checkout(args.baseline, tmp / "baseline")
        trees = {"this": REPO, "baseline": baseline_tree}
        servers: dict[str, ServiceProcess] = {}
        rounds: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
        try:
            for index in range(args.rounds):
                order = ("this", "baseline") if index % 2 == 0 else ("baseline", "this")
                for name in order:  # a fresh server each round: its cold start is measured too
                    servers[name], cold_start = start(trees[name], tmp, env, args.serve_python)
                    measure(servers[name], bodies, 1.0)  # warm-up
                    figures = measure(servers[name], bodies, args.seconds)
                    rounds[name].append(figures | {"cold_start_s": cold_start})
                    servers.pop(name).stop()
        finally:
            for server in servers.values():
                server.stop()
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline_tree)], cwd=REPO, check=False
            )
    results: dict[str, Any] = {"baseline": args.baseline, "rounds": args.rounds, "cases": {}}
    for case in CASES:
        this = [r[case] for r in rounds["this"]]
        base = [r[case] for r in rounds["baseline"]]
        ratios = [a / b for a, b in zip(this, base, strict=True)]
        results["cases"][case] = {
            "this_median": round(statistics.median(this), 2),
            "baseline_median": round(statistics.median(base), 2),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
        }
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
