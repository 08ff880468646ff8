"""Ports and processes on 127.0.0.1, and a moto S3 server (real HTTP, nothing mocked)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# The committed sample, split once (data/README.md): tests train on the first, and promotion
# evaluates on the second, which nothing trains on.
DEV_DATA = REPO / "data" / "creditcard_train.csv.gz"
EVAL_DATA = REPO / "data" / "creditcard_eval.csv.gz"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


SHIPPER_MODULE = b"service.server.shipper"


def _children(parent: int) -> list[tuple[int, bool]]:
    """The processes whose parent is `parent`, from /proc, each with whether it is the decision
    log's shipper (a Gunicorn master starts it beside its workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name
            if int(fields[1]) == parent:
                shipper = SHIPPER_MODULE in (stat.parent / "cmdline").read_bytes()
                children.append((int(stat.parent.name), shipper))
        except (OSError, IndexError):
            continue  # gone meanwhile
    return sorted(children)


def child_pids(parent: int) -> list[int]:
    """A Gunicorn master's workers: its children but the shipper."""
    return [pid for pid, shipper in _children(parent) if not shipper]


def shipper_pid(parent: int) -> int | None:
    return next((pid for pid, shipper in _children(parent) if shipper), None)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process this session started, by its PID, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def start_moto(
    log_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server on a free port of 127.0.0.1; returns the process and its endpoint.
    `env` adds to its environment (moto's own switches)."""
    port = free_port()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **AWS_ENV, **(env or {})},
        )
    try:
        wait_for_port(port)
    except TimeoutError:
        stop_process(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"
