"""Against a real `fraudctl serve` (2 workers) with short client timeouts and a small cap on
connections per worker: slow or silent clients are answered 408 and let go, a kept-alive
connection between requests is not, and a worker at its cap leaves new connections queued."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files
from ml.testing.keys import API_KEY, AUTH
from ml.testing.server import PREDICT_BODY, Http, ServiceProcess, server_env, serving

pytestmark = pytest.mark.slow
TIMEOUT_S = 1.0
CAP = 4


@pytest.fixture
def strict_service(
    tmp_path: Path, s3_store: S3Store, bundle_files: dict[str, bytes]
) -> Iterator[ServiceProcess]:
    promote_files(s3_store, bundle_files)
    env = server_env(
        s3_store,
        FRAUD_HEADER_TIMEOUT_S=str(TIMEOUT_S),
        FRAUD_BODY_TIMEOUT_S=str(TIMEOUT_S),
        FRAUD_MAX_CONNECTIONS_PER_WORKER=str(CAP),
    )
    with serving(tmp_path, env) as server:
        yield server


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most)."""
    sock.settimeout(10)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_silent_connection_is_closed_without_an_answer(strict_service: ServiceProcess) -> None:
    with connect(strict_service.port) as sock:
        assert read_until_closed(sock) == b""


def test_a_head_cut_short_is_answered_408(strict_service: ServiceProcess) -> None:
    with connect(strict_service.port) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b'"code":"request_timeout"' in answer
    assert b"head did not arrive within 1 s" in answer


def test_a_body_cut_short_is_answered_408_and_counted(strict_service: ServiceProcess) -> None:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with connect(strict_service.port) as sock:
        sock.sendall(head + b'{"features": [')
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"body did not arrive within 1 s" in answer
    deadline = time.monotonic() + 10
    series = 'fraud_http_requests_total{method="POST",route="/predict",status="408"}'
    while series not in strict_service.metrics():
        assert time.monotonic() < deadline, strict_service.metrics()
        time.sleep(0.1)


def test_a_kept_alive_connection_may_idle_between_requests(
    strict_service: ServiceProcess,
) -> None:
    with Http(strict_service.port) as client:
        assert client.request("POST", "/predict", PREDICT_BODY, AUTH)[0] == 200
        time.sleep(TIMEOUT_S * 2)  # past the head timeout, within the keep-alive timeout
        conn = client._conn
        assert client.request("POST", "/predict", PREDICT_BODY, AUTH)[0] == 200
        assert client._conn is conn


def test_at_the_cap_a_new_connection_waits_until_silent_ones_are_let_go(
    strict_service: ServiceProcess,
) -> None:
    silent = [connect(strict_service.port) for _ in range(2 * CAP)]
    try:
        time.sleep(0.2)  # both workers now hold CAP connections each
        with Http(strict_service.port, timeout=10) as client:
            status, body = client.request("POST", "/predict", PREDICT_BODY, AUTH)
        assert status == 200, body
        assert "connection_cap_reached" in strict_service.log()
    finally:
        for sock in silent:
            sock.close()
