"""The service's test settings, and waiting for an in-process app to be ready."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi.testclient import TestClient

from ml.runtime.schema import FEATURE_NAMES
from ml.testing.keys import ADMIN_KEY, API_KEY, API_KEY_2, AUTH
from service.settings import Settings

ROW = [0.5] * 30  # one transaction's 30 raw inputs, as the API takes them


def named(values: list[float]) -> dict[str, float]:
    """A row as the object form of a transaction: {"Time": ..., "V1": ..., "Amount": ...}."""
    return dict(zip(FEATURE_NAMES, values, strict=True))


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


def served_version(client: TestClient) -> str:
    """The model version that answers a /predict now."""
    response = client.post("/predict", json={"features": ROW}, headers=AUTH)
    assert response.status_code == 200, response.text
    version: str = response.json()["model_version"]
    return version
