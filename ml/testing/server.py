"""A real `fraudctl serve` process (Gunicorn + Uvicorn workers) for tests, and a tiny HTTP
client on the standard library. Only 127.0.0.1; every process started here is stopped by PID."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml.runtime.store import ArtifactStore
from ml.testing.keys import ADMIN_KEY, API_KEY, AUTH
from ml.testing.processes import child_pids, free_port, stop_process

PREDICT_BODY = json.dumps({"features": [0.5] * 30}).encode()


class Http:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        all_headers = {"content-type": "application/json"} if body is not None else {}
        all_headers |= headers or {}
        for attempt in (1, 2):  # a keep-alive connection closed by the server is retried once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                raw = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                kind = response.getheader("content-type", "")
                return response.status, json.loads(raw) if "json" in kind else raw.decode()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def once(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request on its own connection, closed afterwards."""
    client = Http(port)
    try:
        return client.request(method, path, body, headers)
    finally:
        client.close()


class ServiceProcess:
    def __init__(
        self, tmp: Path, env: dict[str, str], workers: int = 2, python: str = sys.executable
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.tmp = tmp
        self.log_path = tmp / f"serve-{self.port}.log"
        self.env = {
            **os.environ,
            "FRAUD_RUNTIME_DIR": str(tmp / f"runtime-{self.port}"),
            "FRAUD_LOG_LEVEL": "info",
            "FRAUD_METRICS_PORT": str(self.metrics_port),
            **env,
        }
        self.workers = workers
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "ml.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def metrics(self) -> str:
        """Prometheus text from the master's metrics port, over all workers."""
        status, text = once(self.metrics_port, "GET", "/metrics")
        assert status == 200, text
        return str(text)

    def loaded_workers(self) -> int:
        """Workers that report a loaded model (one `fraud_model_info` series per process)."""
        try:
            text = self.metrics()
        except OSError:
            return 0
        return sum(
            1
            for line in text.splitlines()
            if line.startswith("fraud_model_info{") and line.endswith(" 1.0")
        )

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until /health/ready answers 200, then waits until every worker has loaded."""
        ready_after = self._wait_first_ready(timeout)
        deadline = time.monotonic() + timeout
        while self.loaded_workers() < self.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every worker loaded within {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        return ready_after

    def _wait_first_ready(self, timeout: float) -> float:
        started = time.monotonic()
        client = Http(self.port, timeout=2.0)
        while time.monotonic() - started < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if client.request("GET", "/health/ready")[0] == 200:
                    client.close()
                    return time.monotonic() - started
            except OSError:
                pass
            client.close()
            time.sleep(0.05)
        raise TimeoutError(f"not ready within {timeout}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return child_pids(self.proc.pid)

    def worker_holding(self, client: socket.socket) -> int:
        """The worker that accepted `client`'s connection: the process holding the server end
        (found by its socket inode in /proc/net/tcp)."""
        client_port = client.getsockname()[1]
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()  # local address, remote address, ..., inode (fields[9])
            local_port, remote_port = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if (local_port, remote_port) == (self.port, client_port):
                inode = fields[9]
        assert inode is not None, f"no server end for client port {client_port}"
        for pid in self.worker_pids():
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):  # closed meanwhile
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
        raise AssertionError(f"no worker holds client port {client_port}")

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(store: ArtifactStore, **extra: str) -> dict[str, str]:
    """What a test server needs: the store, the test keys, no polling (tests reload)."""
    return {
        "FRAUD_STORE_URI": store.uri,
        "FRAUD_API_KEYS": API_KEY,
        "FRAUD_ADMIN_API_KEYS": ADMIN_KEY,
        "FRAUD_MODEL_POLL_INTERVAL_S": "0",
        **extra,
    }


@contextmanager
def serving(tmp: Path, env: dict[str, str]) -> Iterator[ServiceProcess]:
    """A started server with every worker loaded; stopped (by PID) afterwards."""
    server = ServiceProcess(tmp, env).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def metric_sum(text: str, prefix: str) -> float:
    """The sum of the Prometheus samples in `text` whose line starts with `prefix`."""
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def scrape_counted(service: ServiceProcess, prefix: str, expected: float) -> str:
    """A scrape once `prefix` sums to `expected`, or the last one after 10 s. A worker counts
    a request after its response has been written, so a scrape can still miss the last one."""
    deadline = time.monotonic() + 10
    while True:
        text = service.metrics()
        if metric_sum(text, prefix) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def versions_seen(port: int, n: int) -> Counter[str]:
    """n predictions, each on a fresh connection so the kernel spreads them over workers."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        status, body = once(port, "POST", "/predict", PREDICT_BODY, AUTH)
        assert status == 200, body
        seen[body["model_version"]] += 1
    return seen
