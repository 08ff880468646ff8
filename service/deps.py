"""FastAPI dependencies as `Annotated` aliases, so routes stay thin and typed.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and a thread hop per
dependency per request cost more than everything else in the request path (measured: 4 hops
were most of a /predict request's CPU time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.auth import HEADER, KeyRing, Scope
from service.registry import ModelRegistry


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def _key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys
    return keys


ApiKeyHeader = Annotated[str | None, Header(alias=HEADER, description="API key")]


async def require_predict_key(request: Request, api_key: ApiKeyHeader = None) -> None:
    _key_ring(request).check(api_key, Scope.PREDICT)


async def require_admin_key(request: Request, api_key: ApiKeyHeader = None) -> None:
    _key_ring(request).check(api_key, Scope.ADMIN)


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
PredictKey = Depends(require_predict_key)
AdminKey = Depends(require_admin_key)
