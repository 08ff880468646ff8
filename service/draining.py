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
import os
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server, ServerState

# An idle kept-alive connection gets this long to carry one more request (answered with
# `Connection: close`) before it is closed.
IDLE_GRACE_S = 1.0


class DrainState(ServerState):
    def __init__(self) -> None:
        super().__init__()
        self.draining = False


class DrainingHttpProtocol(HttpToolsProtocol):
    """httptools' protocol, which ends each connection after its next response once draining."""

    server_state: DrainState

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.server_state.draining and self.cycle is not None:
            self.cycle.keep_alive = False

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
    server_state: DrainState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_state = DrainState()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.server_state.draining = True
        for listener in sockets or []:
            await self._take_queued_connections(listener)
        # No await between the last accept above and here: Uvicorn's shutdown closes the
        # listening sockets before it first yields, so nothing can be queued and then dropped.
        await super().shutdown(sockets)

    async def _take_queued_connections(self, listener: socket.socket) -> None:
        """Accept what the kernel already queued and serve it (with `Connection: close`)."""
        loop = asyncio.get_running_loop()
        probe = socket.socket(fileno=os.dup(listener.fileno()))
        try:
            probe.setblocking(False)
            while True:
                try:
                    connection, _ = probe.accept()
                except (BlockingIOError, InterruptedError):
                    return
                await loop.connect_accepted_socket(self._new_protocol, connection)
        finally:
            probe.close()

    def _new_protocol(self) -> asyncio.Protocol:
        protocol_class = self.config.http_protocol_class
        return protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
