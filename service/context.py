"""Per-request values kept in the ASGI scope, readable from middleware and routes alike."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
_KEY = "fraud"


def request_state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault(_KEY, {})
    return state


def request_id_of(scope: Scope) -> str | None:
    value = scope.get(_KEY, {}).get("request_id")
    return value if isinstance(value, str) else None
