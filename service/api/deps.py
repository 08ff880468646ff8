"""FastAPI dependencies as `Annotated` aliases, so routes stay thin and typed.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and a thread hop per
dependency per request cost more than everything else in the request path (measured: 4 hops
were most of a /predict request's CPU time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from service.api.auth import HEADER, Scope
from service.api.openapi import ADMIN_SCHEME, PREDICT_SCHEME
from service.api.state import service_state
from service.model.dataplane import DataPlane


async def get_dataplane(request: Request) -> DataPlane:
    return service_state(request).dataplane


# Security schemes rather than header parameters: the OpenAPI document then names them, and
# Swagger's Authorize button fills the header. `auto_error=False`: `KeyRing.check` answers
# 401/403 in the service's own error shape.
predict_key_header = APIKeyHeader(
    name=HEADER,
    scheme_name=PREDICT_SCHEME,
    description="A key from FRAUD_API_KEYS: /predict, /predict/batch, /model.",
    auto_error=False,
)
admin_key_header = APIKeyHeader(
    name=HEADER,
    scheme_name=ADMIN_SCHEME,
    description="A key from FRAUD_ADMIN_API_KEYS: /reload.",
    auto_error=False,
)


async def require_predict_key(
    request: Request, api_key: Annotated[str | None, Security(predict_key_header)]
) -> None:
    service_state(request).keys.check(api_key, Scope.PREDICT)


async def require_admin_key(
    request: Request, api_key: Annotated[str | None, Security(admin_key_header)]
) -> None:
    service_state(request).keys.check(api_key, Scope.ADMIN)


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
PredictKey = Depends(require_predict_key)
AdminKey = Depends(require_admin_key)
