"""Per-request values kept in the ASGI scope, readable from middleware and routes alike."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

_KEY = "fraud"


def request_state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault(_KEY, {})
    return state


def header(scope: Scope, name: bytes) -> str | None:
    """A request header straight from the ASGI scope (servers send names in lower case);
    cheaper than building Starlette's `Headers` on the hot path."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def request_id_of(scope: Scope) -> str | None:
    value = scope.get(_KEY, {}).get("request_id")
    return value if isinstance(value, str) else None
