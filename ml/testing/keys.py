"""The API keys the tests and benchmarks give the service, and the headers that send them."""

from __future__ import annotations

API_KEY = "predict-key-1"
API_KEY_2 = "predict-key-2"
ADMIN_KEY = "admin-key-1"
AUTH = {"X-API-Key": API_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
