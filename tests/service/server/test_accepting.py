"""How a real `fraudctl serve` (2 workers) spreads connections over its workers
(service/server/accepting.py): which worker holds a connection is read from /proc.

Workers are paused with SIGSTOP (and always continued) to queue connections while no worker
can accept them: the moment at which Uvicorn's own accepting gave them all to one worker."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from ml.testing.server import ServiceProcess
from service.server.accepting import ConnectionTable

pytestmark = pytest.mark.slow


class Client:
    """One keep-alive connection on a plain socket, so that the test can find its worker."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def get(self) -> bool:
        """GET /health/live; True when the server ends the connection after answering."""
        self.sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        response.read()
        assert response.status == 200
        return response.getheader("connection", "").lower() == "close"

    def reconnect(self) -> None:
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def close(self) -> None:
        self.sock.close()


def wait_every_worker_accepting(service: ServiceProcess, timeout: float = 10.0) -> None:
    """A worker accepts once its start-up has finished, which can come a little after its
    model is loaded (what `wait_ready` waits for): connect until each has held a connection."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while seen != set(service.worker_pids()):
        assert time.monotonic() < deadline, f"only {seen} of {service.worker_pids()} accept"
        client = Client(service.port)
        client.get()
        seen.add(service.worker_holding(client.sock))
        client.close()
        time.sleep(0.02)


@pytest.fixture
def connect(service: ServiceProcess) -> Iterator[Callable[[], Client]]:
    """Opens clients to the service once every worker accepts; every one is closed after the
    test, pass or fail."""
    wait_every_worker_accepting(service)
    opened: list[Client] = []

    def open_one() -> Client:
        opened.append(Client(service.port))
        return opened[-1]

    yield open_one
    for client in opened:
        client.close()


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def answered(connect: Callable[[], Client], n: int) -> list[Client]:
    """n new connections, queued together, each of which has carried one request and is still
    open.

    A worker holding `SHED_AT_EXCESS` more connections than a peer ends one after its next
    response (service.server.draining), and a paused peer holds none: so a request can be answered
    with `Connection: close`. Its client reconnects, as any client does, and asks again. A
    worker sheds at most one connection per `REBALANCE_S` tick, so a few attempts suffice."""
    clients = [connect() for _ in range(n)]
    for client in clients:
        for _ in range(5):
            if not client.get():
                break
            client.reconnect()
        else:
            raise AssertionError("5 connections in a row were ended after their response")
    return clients


def holders(service: ServiceProcess, clients: list[Client]) -> list[int]:
    return [service.worker_holding(client.sock) for client in clients]


def test_connections_queued_together_go_to_different_workers(
    service: ServiceProcess, connect: Callable[[], Client]
) -> None:
    workers = service.worker_pids()
    for _ in range(5):
        with paused(workers):
            clients = [connect() for _ in range(2)]  # queued by the kernel
        for client in clients:
            client.get()
        assert sorted(holders(service, clients)) == workers
        for client in clients:
            client.close()
        time.sleep(0.1)  # the workers see the connections end


def test_a_stopped_worker_strands_no_connection(
    service: ServiceProcess, connect: Callable[[], Client]
) -> None:
    stopped, running = service.worker_pids()
    with paused([stopped]):
        clients = answered(connect, 3)  # the running worker accepts each after its wait
        assert holders(service, clients) == [running] * 3


def test_a_worker_holding_two_more_ends_one_and_its_client_lands_on_the_other(
    service: ServiceProcess, connect: Callable[[], Client]
) -> None:
    first, second = service.worker_pids()
    with paused([second]):
        clients = answered(connect, 2)
    assert holders(service, clients) == [first, first]

    ended = 0
    deadline = time.monotonic() + 5
    while sorted(holders(service, clients)) != [first, second] and time.monotonic() < deadline:
        for client in clients:
            if client.get():
                ended += 1
                client.reconnect()
        time.sleep(0.05)
    assert sorted(holders(service, clients)) == [first, second]
    assert ended == 1


def test_the_table_hands_out_free_slots_and_reads_only_live_peers() -> None:
    table = ConnectionTable(slots=3)
    first, second = 0, 1
    assert (table.claim([]), table.claim([first])) == (first, second)
    assert table.fewest_elsewhere(first) is None  # the second is no peer until it accepts
    table.publish(second, 0)
    assert table.fewest_elsewhere(first) == 0
    table.publish(first, 4)
    table.publish(second, 2)
    assert (table.fewest_elsewhere(first), table.fewest_elsewhere(second)) == (2, 4)
    table.release(second)
    assert table.fewest_elsewhere(first) is None  # no live peer
    assert table.claim([first]) == 1  # a slot no live worker has is handed out again
    assert table.claim([0, 1, 2]) is None
