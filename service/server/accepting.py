"""Accepting connections so that the next one goes to the worker holding the fewest.

The workers of a task wait on one listening socket, and the kernel wakes all of them for a new
connection. Uvicorn (libuv) then accepts every queued connection in one go, so the worker that
wakes first takes all that arrived together, and keeps them: keep-alive pins a connection to
the worker that accepted it. Measured with two clients sending 1,000-row batches to 2 workers,
12 of 14 runs put both connections on one worker, which halved the task's throughput (~110k
against ~220k rows/s) while the other worker idled.

Here each worker publishes how many connections it holds in a `ConnectionTable` that the
Gunicorn master shares with every worker it forks, and accepts one connection per wake-up:
- at once, if no other worker holds fewer;
- otherwise it leaves the connection to that worker (woken by the same connection) and looks
  again every `PEER_TURN_S`; after `MAX_WAIT_S` it accepts anyway, so a busy or stopped peer
  cannot strand a connection.
Only the moment of accepting changes: a request on a connection already held never waits.

Counts can still be off when connections end just as new ones arrive (a client that closes
its connections and opens new ones while a worker is busy finishing a request on an old one),
or when a peer wakes too late. So a worker holding two or more connections more than a peer
ends one after its next response (service.server.draining); its client reconnects, and the new
connection goes to the peer.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import select
import socket
from collections.abc import Callable, Iterable, Sized

from service.observe.logging import get_logger

log = get_logger("service.server.accepting")

# A woken idle worker accepts within ~0.1 ms here; a worker holding more looks again every 2 ms,
# and after 20 ms (a busy peer: a 1,000-row batch takes ~9 ms) it accepts the connection itself.
PEER_TURN_S = 0.002
MAX_WAIT_S = 0.02
# Out of descriptors or buffers: stop accepting for a moment rather than spin (as asyncio does).
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_RETRY_S = 1.0
FREE = -1  # a slot no live worker has
# At FRAUD_MAX_CONNECTIONS_PER_WORKER, how long a worker waits before it looks again.
CAP_RETRY_S = 0.05


class ConnectionTable:
    """How many connections each worker holds: an int32 per worker slot, in memory mapped by
    the master before it forks its workers, so that all of them share it. The master hands
    out and frees slots; each worker writes only its own and reads the others'."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, slots * 4)  # anonymous and shared: forks see one table
        self._counts = memoryview(self._memory).cast("i")
        for slot in range(slots):
            self._counts[slot] = FREE

    def claim(self, taken: Iterable[int | None]) -> int | None:
        """Master, before a fork: the first slot no live worker has (None if all are taken).
        It counts as a peer only once its worker accepts (`publish`)."""
        busy = set(taken)
        return next((slot for slot in range(len(self._counts)) if slot not in busy), None)

    def release(self, slot: int | None) -> None:
        """A worker that stops accepting, and the master when a worker has exited."""
        if slot is not None:
            self._counts[slot] = FREE

    def publish(self, slot: int, held: int) -> None:
        self._counts[slot] = held

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections any other live worker holds; None if there is none."""
        others = [c for i, c in enumerate(self._counts) if i != slot and c != FREE]
        return min(others, default=None)


class Acceptor:
    """Accepts from one listening socket into `protocol_factory`'s protocols. `connections`
    is this worker's live set of connections (Uvicorn's `server_state.connections`); `table`
    and `slot` are the task's shared counts and this worker's place in them (None: no peers
    known, so every connection is accepted at once)."""

    def __init__(
        self,
        listener: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        connections: Sized,
        table: ConnectionTable | None = None,
        slot: int | None = None,
        *,
        max_connections: int = 1000,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # Its own descriptor: closing it, with the listener, releases the socket in this process.
        self._socket = socket.socket(fileno=os.dup(listener.fileno()))
        self._socket.setblocking(False)
        self._protocol_factory = protocol_factory
        self._connections = connections
        self._table, self._slot = table, slot
        self._max_connections = max_connections
        self._at_cap = False
        self._setups: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None
        self._listen()
        self.publish()  # a peer from now on

    def held(self) -> int:
        # Connections still being set up are not in `connections` yet, but are held all the same.
        return len(self._connections) + len(self._setups)

    def publish(self) -> None:
        if self._table is not None and self._slot is not None:
            self._table.publish(self._slot, self.held())

    def excess(self) -> int:
        """How many more connections this worker holds than the other worker holding the
        fewest (0 or less: none holds fewer)."""
        if self._table is None or self._slot is None:
            return 0
        fewest = self._table.fewest_elsewhere(self._slot)
        return 0 if fewest is None else self.held() - fewest

    def _listen(self) -> None:
        self._timer = None
        self._loop.add_reader(self._socket.fileno(), self._on_readable)

    def _pause(self, seconds: float, then: Callable[[], None]) -> None:
        self._loop.remove_reader(self._socket.fileno())
        self._timer = self._loop.call_later(seconds, then)

    def _on_readable(self) -> None:
        if self.held() >= self._max_connections:
            # At the cap: leave the connection queued for a peer (or for later) and look again
            # soon; the clients' timeouts (service.server.draining) free held ones.
            if not self._at_cap:
                log.warning("connection_cap_reached", held=self.held())
            self._at_cap = True
            self._pause(CAP_RETRY_S, self._listen)
            return
        self._at_cap = False
        now = self._loop.time()
        if self.excess() > 0:
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < MAX_WAIT_S:
                self._pause(PEER_TURN_S, self._after_peer_turn)
                return
        self._waiting_since = None
        self._accept()

    def _after_peer_turn(self) -> None:
        self._listen()  # still queued: `_on_readable` runs again and decides
        if not select.select([self._socket], [], [], 0)[0]:
            self._waiting_since = None  # a peer took it

    def _accept(self) -> bool:
        try:
            connection, _ = self._socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False  # taken by a peer, or gone before it was accepted
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRORS:
                raise
            log.error("accept_failed", error=str(exc), retry_s=RESOURCE_RETRY_S)
            self._pause(RESOURCE_RETRY_S, self._listen)
            return False
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup = self._loop.create_task(
            self._loop.connect_accepted_socket(self._protocol_factory, connection)
        )
        self._setups.add(setup)
        setup.add_done_callback(self._set_up)
        self.publish()
        return True

    def _set_up(self, setup: asyncio.Task[object]) -> None:
        self._setups.discard(setup)
        self.publish()
        if not setup.cancelled() and (exc := setup.exception()) is not None:
            log.warning("connection_setup_failed", error=repr(exc))

    def take_queued_and_close(self) -> None:
        """Accept every connection the kernel has queued for this socket, then stop listening.
        Synchronous, so nothing can be queued between the last accept and the close."""
        while self._accept():
            pass
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._socket.fileno() >= 0:
            self._loop.remove_reader(self._socket.fileno())
            self._socket.close()
        if self._table is not None:
            self._table.release(self._slot)  # no peer waits for a worker that stopped accepting
