"""The decision log's cost and its promise, measured in `make bench`: the same model served with
capture off and on (two servers, alternating rounds at c=32), the workers' CPU per request and
RSS, the shipper's RSS; then the capturing server is stopped with SIGTERM and the rows in the
store are counted against the requests it answered."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult, run_load
from bench.measure import API_KEY, median_ratio, ratios, worker_rss_mb, workers_cpu_s
from ml.captures import read_captures
from ml.runtime.store import ArtifactReader
from ml.testing.processes import shipper_pid
from ml.testing.server import ServiceProcess


@dataclass
class CaptureBench:
    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {"off": [], "on": []})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {"off": [], "on": []})
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    shipper_rss_mb: float | None = None
    answered: int = 0
    captured: int = 0

    def summary(self) -> dict[str, Any]:
        on, off = self.runs["on"], self.runs["off"]
        return {
            "throughput_on_to_off_c32": median_ratio(on, off),
            "ratios_by_round_c32": ratios(on, off),
            "p99_ms": {
                k: round(statistics.median(r.p99_ms for r in v), 3) for k, v in self.runs.items()
            },
            "p99_on_to_off": round(
                statistics.median(r.p99_ms for r in on) / statistics.median(r.p99_ms for r in off),
                3,
            ),
            "worker_cpu_us_per_request": {
                k: [round(x, 1) for x in v] for k, v in self.cpu_us.items()
            },
            "worker_rss_mb": self.rss_mb,
            "shipper_rss_mb": self.shipper_rss_mb,
            "sigterm": {
                "answered": self.answered,
                "in_store": self.captured,
                "lost": max(0, self.answered - self.captured),
            },
        }


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return round(kb / 1024.0, 1)


def capture_off_and_on(
    tmp: Path,
    env: dict[str, str],
    store: ArtifactReader,
    body: bytes,
    rounds: int,
    seconds: float,
    python: str,
) -> CaptureBench:
    bench = CaptureBench()
    capture = {"FRAUD_CAPTURE": "1", "FRAUD_CAPTURE_STORE_URI": store.uri}
    servers = {
        "off": ServiceProcess(tmp, env, python=python).start(),
        "on": ServiceProcess(tmp, env | capture, python=python).start(),
    }
    try:
        for server in servers.values():
            server.wait_ready(60)
        warm = {
            name: run_load(s.port, "/predict", body, API_KEY, 32, 2) for name, s in servers.items()
        }
        bench.answered = warm["on"].requests - warm["on"].non_2xx
        for round_number in range(rounds):
            order = list(servers.items())
            for name, server in order if round_number % 2 else order[::-1]:
                assert server.proc is not None
                before = workers_cpu_s(server.proc.pid)
                run = run_load(server.port, "/predict", body, API_KEY, 32, seconds)
                bench.runs[name].append(run)
                bench.cpu_us[name].append(
                    (workers_cpu_s(server.proc.pid) - before) / run.requests * 1e6
                )
                if name == "on":
                    bench.answered += run.requests - run.non_2xx
        for name, server in servers.items():
            assert server.proc is not None
            bench.rss_mb[name] = worker_rss_mb(server.proc.pid)
        assert servers["on"].proc is not None
        shipper = shipper_pid(servers["on"].proc.pid)
        bench.shipper_rss_mb = _rss_mb(shipper) if shipper else None
    finally:
        for server in servers.values():
            server.stop()  # SIGTERM: the capturing one ships its last rows before it exits
    bench.captured = read_captures(store).num_rows
    return bench


def main() -> None:
    """`python -m bench.capture`: this comparison alone, in more rounds, on a local store."""
    import argparse
    import json
    import os
    import sys
    import tempfile

    from ml.data import load_dataset
    from ml.runtime.local_store import LocalStore
    from ml.testing.bundles import promote_files, signing_environment
    from ml.testing.processes import DEV_DATA
    from ml.testing.server import server_env
    from ml.train import train_bundle

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve-python", default=sys.executable)
    args = parser.parse_args()
    data = load_dataset(DEV_DATA)
    row = data.X[int(data.y.argmax())].tolist()
    body = json.dumps({"features": row}).encode()
    with tempfile.TemporaryDirectory(prefix="fraud-capture-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(signing_environment(tmp / "keys"))
        store = LocalStore(tmp / "store")
        promote_files(store, train_bundle(data, seed=0))
        env = server_env(store, FRAUD_API_KEYS=API_KEY) | {"PYTHONPATH": str(Path.cwd())}
        bench = capture_off_and_on(
            tmp, env, store, body, args.rounds, args.seconds, args.serve_python
        )
    print(json.dumps(bench.summary(), indent=2))


if __name__ == "__main__":
    main()
