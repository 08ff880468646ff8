"""Against a real `fraudctl serve` (Gunicorn, 2 Uvicorn workers, moto as S3): shutting down
under keep-alive load, settings that stop start-up, and error answers that stay bounded."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from ml.runtime.s3_store import S3Store
from ml.testing.keys import API_KEY, AUTH
from ml.testing.server import (
    PREDICT_BODY,
    Http,
    ServiceProcess,
    metric_sum,
    once,
    scrape_counted,
    server_env,
)

pytestmark = pytest.mark.slow


KEEP_ALIVE_CLIENTS = 16


class KeepAliveClient(threading.Thread):
    """Sends /predict on one kept-alive connection until the server refuses new connections.
    A request the server accepted and then dropped (reset, EOF) is a failure; a refused (or,
    mid-handshake, reset) connect is not: the server had stopped listening, as it should once
    draining."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop_event = stop
        self.answered = 0
        self.closed_by_server = 0
        self.dropped: list[str] = []

    def run(self) -> None:
        headers = {**AUTH, "content-type": "application/json"}
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    conn.connect()
                except (ConnectionRefusedError, ConnectionResetError):
                    # Reset: the listener closed while this handshake sat in its queue. No
                    # request was sent, so none was dropped: the server had stopped listening.
                    conn.close()
                    return
            try:
                conn.request("POST", "/predict", body=PREDICT_BODY, headers=headers)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError) as exc:
                self.dropped.append(repr(exc))
                return
            assert response.status == 200
            self.answered += 1
            if response.getheader("connection", "").lower() == "close":
                self.closed_by_server += 1
                conn.close()
                conn = None


def test_sigterm_under_keep_alive_load_drops_no_accepted_request(
    service: ServiceProcess,
) -> None:
    stop = threading.Event()
    clients = [KeepAliveClient(service.port, stop) for _ in range(KEEP_ALIVE_CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 10
    while sum(c.answered for c in clients) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    service.terminate()
    assert service.proc is not None
    exit_code = service.proc.wait(timeout=25)
    stop.set()
    for client in clients:
        client.join(timeout=15)
    dropped = [reason for c in clients for reason in c.dropped]
    assert dropped == [], f"{len(dropped)} accepted requests dropped: {dropped[:5]}"
    assert exit_code == 0
    assert sum(c.answered for c in clients) >= 2000
    # Every connection was told to close: draining answers with `Connection: close`.
    assert sum(c.closed_by_server for c in clients) >= KEEP_ALIVE_CLIENTS


def test_missing_settings_stop_start_up_naming_the_variable(
    tmp_path: Path, s3_store: S3Store
) -> None:
    env = server_env(s3_store)
    del env["FRAUD_ADMIN_API_KEYS"]
    server = ServiceProcess(tmp_path, env)
    server.env.pop("FRAUD_ADMIN_API_KEYS", None)
    server.start()
    assert server.proc is not None
    assert server.proc.wait(timeout=30) == 2
    assert "FRAUD_ADMIN_API_KEYS: Field required" in server.log()


def test_a_taken_metrics_port_stops_start_up_naming_the_variable(
    tmp_path: Path, s3_store: S3Store
) -> None:
    server = ServiceProcess(tmp_path, server_env(s3_store))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.metrics_port))
        squatter.listen()
        server.start()
        assert server.proc is not None
        assert server.proc.wait(timeout=30) == 2
    assert f"cannot serve metrics on 127.0.0.1:{server.metrics_port}" in server.log()
    assert "FRAUD_METRICS_PORT" in server.log()


@pytest.mark.parametrize(
    ("path", "body", "received"),
    [
        ("/predict", b"18446744073709551616", "18446744073709551616"),
        ("/predict", b'{"features": [1e400' + b", 0.5" * 29 + b"]}", "inf"),
        ("/predict", b'{"features": [-1e400' + b", 0.5" * 29 + b"]}", "-inf"),
        ("/predict", b'{"features": [' + b"9" * 400 + b", 0.5" * 29 + b"]}", "(400 characters)"),
        (
            "/predict/batch",
            b'{"transactions": [[1e400' + b", 0.5" * 29 + b"]]}",
            "inf",
        ),
        ("/predict/batch", b"[18446744073709551616]", "list"),
    ],
    ids=["bigint-body", "1e400", "-1e400", "400-digit-int", "1e400-in-batch", "bigint-batch"],
)
def test_numbers_json_cannot_carry_back_are_a_422_not_a_500(
    service: ServiceProcess, path: str, body: bytes, received: str
) -> None:
    """The error body echoes what was received: values JSON cannot encode are shown as text."""
    status, answer = once(service.port, "POST", path, body, AUTH)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_input"
    shown = [str(d.get("received")) for d in answer["error"]["details"]]
    assert any(received in s for s in shown), shown


def test_error_work_is_bounded_for_a_large_batch_of_bad_rows(service: ServiceProcess) -> None:
    """~2 MiB of rows of `true`: refused on the row count before any row is validated; at the
    row limit, validation stops at the first bad row, whose problems (at most 25 itemised)
    are all the answer describes."""
    bad_row = b"[" + b",".join([b"true"] * 30) + b"]"
    too_many = b'{"transactions": [' + b",".join([bad_row] * 11_700) + b"]}"
    assert len(too_many) < 2 * 1024 * 1024
    status, body = once(service.port, "POST", "/predict/batch", too_many, AUTH)
    assert status == 413, body
    assert "11700 rows; the limit is FRAUD_MAX_BATCH_ROWS=1000" in body["error"]["message"]
    at_limit = b'{"transactions": [' + b",".join([bad_row] * 1000) + b"]}"
    client = Http(service.port)
    try:
        status, answer = client.request("POST", "/predict/batch", at_limit, AUTH)
    finally:
        client.close()
    assert status == 422
    assert len(json.dumps(answer)) < 64 * 1024
    assert len(answer["error"]["details"]) == 25
    assert {d["field"].split("[")[1] for d in answer["error"]["details"]} == {"0]"}
    assert "(and 5 more problems; 30 in all)" in answer["error"]["message"]
    assert "rows after the first invalid one are not checked" in answer["error"]["message"]


def test_a_client_that_leaves_mid_body_is_recorded_as_499_not_a_500(
    service: ServiceProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            + b'{"features": [1'
        )
    counted = 'fraud_http_requests_total{method="POST",route="/predict",status="499"}'
    text = scrape_counted(service, counted, 1.0)
    assert metric_sum(text, counted) == 1.0
    assert 'status="500"' not in text
    assert "unhandled_error" not in service.log()
