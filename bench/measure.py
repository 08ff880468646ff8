"""What `make bench` measures with: worker CPU and memory from /proc, cold starts, the floor
app's server, promote + reload cycles under load, and the rounds' medians and ratios."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files
from ml.testing.processes import (
    child_pids,
    free_port,
    wait_for_port,
)
from ml.testing.server import ServiceProcess, once
from service.client import FraudClient

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
    """Rows/s through the typed client (service/client.py), one caller: what a user's script
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
