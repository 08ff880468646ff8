"""The service's test settings and keys, and waiting for an in-process app to be ready."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi.testclient import TestClient

from service.settings import Settings

API_KEY = "predict-key-1"
API_KEY_2 = "predict-key-2"
ADMIN_KEY = "admin-key-1"
AUTH = {"X-API-Key": API_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def make_settings(store_uri: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "store_uri": store_uri,
        "api_keys": f"{API_KEY},{API_KEY_2}",
        "admin_api_keys": ADMIN_KEY,
        "trusted_keys": os.environ["FRAUD_TRUSTED_KEYS"],  # the session's (tests/conftest.py)
        "model_poll_interval_s": 0,
        "startup_retry_initial_s": 0.05,
        "startup_retry_max_s": 0.2,
        "startup_load_wait_s": 0.3,
    }
    return Settings(**(values | overrides))


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise TimeoutError("the app did not become ready")


def metrics_text(client: TestClient) -> str:
    """In one process there is no metrics port: read what the Gunicorn master would serve."""
    body: bytes = client.app.state.service.metrics.render()[0]  # type: ignore[attr-defined]
    return body.decode()
