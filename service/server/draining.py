"""A Uvicorn server that drains on SIGTERM without resetting a request it has accepted.

Uvicorn's own shutdown closes every idle keep-alive connection at once and stops accepting,
which drops two kinds of request (measured with 16 keep-alive clients: 9-17 resets per stop):
- a request a client sent on a kept-alive connection just as the server closed it;
- a connection the kernel had already queued on the listening socket, reset when the last
  process holding that socket exited.

Draining here instead:
1. takes every connection the kernel has queued, then closes the listening socket, so later
   connects are refused (a client can retry elsewhere) rather than queued and reset;
2. answers every request from now on with `Connection: close`, so a kept-alive connection ends
   after a complete response, never in the middle of one;
3. closes a connection only once it has been idle for `IDLE_GRACE_S`, the same race a client
   already handles for any keep-alive timeout;
4. waits for in-flight requests, bounded by Gunicorn's graceful timeout (FRAUD_GRACEFUL_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server, ServerState

from service.api.context import request_state
from service.api.errors import error_body
from service.server.accepting import Acceptor, ConnectionTable

# An idle kept-alive connection gets this long to carry one more request (answered with
# `Connection: close`) before it is closed.
IDLE_GRACE_S = 1.0


def request_timeout(message: str) -> bytes:
    """A whole 408 response, written straight to the transport: no app is running for it."""
    body = error_body("request_timeout", message, None)
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# How often a worker compares its connections with its peers', and by how many it must exceed
# the fewest before it ends one (service.server.accepting): by one is as even as an odd count gets.
REBALANCE_S = 0.2
# How often a worker looks for clients past their head or body deadline: a timeout fires at
# most this much late.
DEADLINE_SWEEP_S = 0.5
SHED_AT_EXCESS = 2


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take, and how many connections a worker holds (Settings)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    max_connections: int = 1000


class DrainState(ServerState):
    def __init__(self, limits: ConnectionLimits) -> None:
        super().__init__()
        self.limits = limits
        self.tick = 0  # deadline sweeps so far
        self.draining = False
        self.shed_one = False  # end the next connection that carries a request
        self.connection_closed: Callable[[], None] = lambda: None


class DrainingHttpProtocol(HttpToolsProtocol):
    """httptools' protocol, which ends each connection after its next response once draining,
    and one connection when the server sheds one to even out its workers' connections.

    Its server also times clients (Uvicorn times only the idle gap between requests): a
    request's head must arrive within `header_timeout_s` of the connection opening or of its
    first byte, and its body within `body_timeout_s` of its head, or it is answered 408 and
    closed (`DrainingServer._sweep_deadlines`). Without this, 4,000 connections that never
    sent a byte stayed open for as long as a test ran."""

    server_state: DrainState
    # What the server's sweep last saw this connection await, and at which sweep it first did.
    # Read and set by the sweep alone, so a request pays nothing for its timeouts (a timer per
    # awaited part cost /predict 4-7 % of its worker CPU, a clock read in each callback ~2 %).
    swept: tuple[str, object] | None = None
    swept_since = 0

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        state = self.server_state
        if (state.draining or state.shed_one) and self.cycle is not None:
            self.cycle.keep_alive = False
            state.shed_one = False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server_state.connection_closed()

    def awaited(self) -> str | None:
        """The part of a request this connection waits for, from Uvicorn's own state: "head"
        when no request is in progress and no keep-alive timer runs (a new connection, or
        bytes of the next request have arrived), "body" while a request's body is incomplete;
        None otherwise (the app is at work, or the connection idles under keep-alive)."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return "head" if self.timeout_keep_alive_task is None else None
        return "body" if cycle.more_body else None

    def time_out(self, part: str, seconds: float) -> None:
        """`part` is overdue: answer 408 if a request had begun and no response has, then
        close."""
        if self.transport.is_closing():
            return
        started = self.cycle is not None and self.cycle.response_started
        in_request = part == "body" or bool(getattr(self, "url", b""))
        if in_request and not started:
            if part == "body" and self.cycle is not None:
                request_state(cast(dict[str, Any], self.cycle.scope))["timed_out"] = part
            message = f"the request's {part} did not arrive within {seconds:g} s"
            self.transport.write(request_timeout(message))
        self.transport.close()

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            # Idle: not closed under a client that may be sending right now.
            if self.timeout_keep_alive_task is not None:
                self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = self.loop.call_later(
                IDLE_GRACE_S, self.timeout_keep_alive_handler
            )
        else:
            self.cycle.keep_alive = False


class DrainingServer(Server):
    """Uvicorn's server with this module's draining, accepting through `service.server.accepting`
    when it serves Gunicorn's listening sockets."""

    server_state: DrainState

    def __init__(
        self,
        config: Config,
        connection_table: ConnectionTable | None = None,
        connection_slot: int | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        super().__init__(config)
        self.server_state = DrainState(limits or ConnectionLimits())
        self._table, self._slot = connection_table, connection_slot
        self._acceptors: list[Acceptor] = []
        self._rebalancing: asyncio.TimerHandle | None = None
        self._sweeping: asyncio.TimerHandle | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            await super().startup(sockets)
            return
        if self.config.ssl is not None:
            # The acceptor serves plain HTTP; TLS ends at the load balancer (infra/).
            raise RuntimeError("the worker does not terminate TLS: leave certfile/keyfile unset")
        # Uvicorn's start-up for sockets handed over by Gunicorn, with its `create_server`
        # (which accepts every queued connection at once) replaced by an Acceptor per socket.
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        self.servers = []
        self._acceptors = [
            Acceptor(
                s,
                self._new_protocol,
                self.server_state.connections,
                self._table,
                self._slot,
                max_connections=self.server_state.limits.max_connections,
            )
            for s in sockets
        ]
        self.server_state.connection_closed = self._acceptors[0].publish
        self._rebalance()
        self._sweep_deadlines()
        self.started = True

    def _rebalance(self) -> None:
        """Holding `SHED_AT_EXCESS` or more connections more than a peer: end the next one
        that carries a request, so that its client reconnects to the peer."""
        self.server_state.shed_one = self._acceptors[0].excess() >= SHED_AT_EXCESS
        loop = asyncio.get_running_loop()
        self._rebalancing = loop.call_later(REBALANCE_S, self._rebalance)

    def _sweep_deadlines(self) -> None:
        """Time out every connection that has awaited the same head or body for its timeout:
        seen awaiting it at sweeps that span the timeout, so it fires at most one sweep late.
        A new request is a new Uvicorn cycle, which starts the count again."""
        state = self.server_state
        state.tick += 1
        limits = state.limits
        timeouts = {"head": limits.header_timeout_s, "body": limits.body_timeout_s}
        for connection in list(state.connections):
            if not isinstance(connection, DrainingHttpProtocol):
                continue
            part = connection.awaited()
            if part is None:
                connection.swept = None
                continue
            seen = (part, connection.cycle)
            if seen != connection.swept:
                connection.swept, connection.swept_since = seen, state.tick
            elif (state.tick - connection.swept_since) * DEADLINE_SWEEP_S >= timeouts[part]:
                connection.swept = None
                connection.time_out(part, timeouts[part])
        self._sweeping = asyncio.get_running_loop().call_later(
            DEADLINE_SWEEP_S, self._sweep_deadlines
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.server_state.draining = True
        if self._rebalancing is not None:
            self._rebalancing.cancel()
        if self._sweeping is not None:
            self._sweeping.cancel()
        for acceptor in self._acceptors:
            acceptor.take_queued_and_close()
        # No await between the last accept above and here: Uvicorn's shutdown closes the
        # listening sockets before it first yields, so nothing can be queued and then dropped.
        await super().shutdown(sockets)

    def _new_protocol(self) -> asyncio.Protocol:
        protocol_class = self.config.http_protocol_class
        return protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
