"""The Uvicorn worker class for Gunicorn, tuned for this service."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class FraudUvicornWorker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,  # the app logs one structured line per request
        "server_header": False,
        "timeout_graceful_shutdown": float(os.environ.get("FRAUD_GRACEFUL_TIMEOUT_S", "20")),
    }
