"""FastAPI dependencies as `Annotated` aliases, so routes stay thin and typed.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and a thread hop per
dependency per request cost more than everything else in the request path (measured: 4 hops
were most of a /predict request's CPU time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.auth import HEADER, Scope
from service.dataplane import DataPlane
from service.state import service_state


async def get_dataplane(request: Request) -> DataPlane:
    return service_state(request).dataplane


ApiKeyHeader = Annotated[str | None, Header(alias=HEADER, description="API key")]


async def require_predict_key(request: Request, api_key: ApiKeyHeader = None) -> None:
    service_state(request).keys.check(api_key, Scope.PREDICT)


async def require_admin_key(request: Request, api_key: ApiKeyHeader = None) -> None:
    service_state(request).keys.check(api_key, Scope.ADMIN)


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
PredictKey = Depends(require_predict_key)
AdminKey = Depends(require_admin_key)
