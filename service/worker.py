"""The Uvicorn worker class for Gunicorn, tuned for this service."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class FraudUvicornWorker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,  # the app logs one structured line per request
        "server_header": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Gunicorn's graceful timeout (from FRAUD_GRACEFUL_TIMEOUT_S) bounds Uvicorn's too.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
