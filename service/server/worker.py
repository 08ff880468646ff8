"""The Uvicorn worker class for Gunicorn, tuned for this service."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from service.server.draining import DrainingHttpProtocol, DrainingServer


class FraudUvicornWorker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": DrainingHttpProtocol,  # httptools, ending connections cleanly when draining
        "lifespan": "on",
        "access_log": False,  # the app logs one structured line per request
        "server_header": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Gunicorn's graceful timeout (from FRAUD_GRACEFUL_TIMEOUT_S) bounds Uvicorn's too.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout

    async def _serve(self) -> None:
        """As UvicornWorker's, with the server that drains without resets
        (service.server.draining)."""
        self.config.app = self.wsgi
        # The master's table of connections per worker, this worker's slot in it, and the
        # clients' time and connection limits (service.server.gunicorn_conf); absent under another
        # Gunicorn configuration, where the limits' defaults apply.
        server = DrainingServer(
            self.config,
            connection_table=getattr(self, "fraud_connection_table", None),
            connection_slot=getattr(self, "fraud_connection_slot", None),
            limits=getattr(self, "fraud_connection_limits", None),
        )
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
