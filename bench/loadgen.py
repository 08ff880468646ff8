"""Load generators, bounded in time, against 127.0.0.1 only.

wrk (Debian's package) when it is installed: it costs the shared cores far less than a Python
client. Otherwise a threaded Python client with keep-alive connections. Each run says which."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then wrk.headers["X-API-Key"] = key end
local f = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    tool: str
    concurrency: int
    seconds: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    port: int, path: str, body: bytes, api_key: str, concurrency: int, seconds: float
) -> LoadResult:
    if wrk_available():
        return _wrk(port, path, body, api_key, concurrency, seconds)
    return _python(port, path, body, api_key, concurrency, seconds)


def _wrk(
    port: int, path: str, body: bytes, api_key: str, concurrency: int, seconds: float
) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(WRK_SCRIPT)
        body_file.write_bytes(body)
        threads = 1 if concurrency < 4 else 2
        result = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{seconds:.0f}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
            env={**os.environ, "BENCH_API_KEY": api_key, "BENCH_BODY_FILE": str(body_file)},
        )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    return LoadResult(
        "wrk",
        concurrency,
        data["duration_us"] / 1e6,
        data["requests"],
        data["non_2xx"],
        data["socket_errors"],
        data["p50_us"] / 1e3,
        data["p99_us"] / 1e3,
    )


def _python(
    port: int, path: str, body: bytes, api_key: str, concurrency: int, seconds: float
) -> LoadResult:
    latencies: list[float] = []
    failures = [0, 0]  # non-2xx, socket errors
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "X-API-Key": api_key}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except OSError:
                with lock:
                    failures[1] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - started)
            if not 200 <= response.status < 300:
                with lock:
                    failures[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return LoadResult(
        "python",
        concurrency,
        elapsed,
        len(latencies),
        failures[0],
        failures[1],
        quantiles[49] * 1e3,
        quantiles[98] * 1e3,
    )
