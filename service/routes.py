"""HTTP routes. Thin: validate, call the predictor or registry, shape the answer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from ml.bundle import FEATURE_NAMES, BundleError
from ml.store import StoreError
from service.auth import HEADER, Scope
from service.context import header, request_id_of, request_state
from service.deps import AdminKey, PredictKey, RegistryDep
from service.direct import DirectRoute
from service.errors import NotReady, PayloadTooLarge, error_response, invalid_request
from service.predictor import MicroBatcher, score_batch
from service.registry import ModelRegistry, ReloadOutcome, as_service_error
from service.schemas import (
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
)
from service.settings import Settings

router = APIRouter()
# The two scoring routes: called by `DirectDispatch` without FastAPI's per-request machinery.
scoring_router = APIRouter(route_class=DirectRoute)
Body = TypeVar("Body", bound=BaseModel)
HEADER_KEY = HEADER.lower().encode()


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def _row(values: Any) -> list[float]:
    if isinstance(values, list):
        return values
    return [getattr(values, name) for name in FEATURE_NAMES]


# The two scoring routes are the hot path. They take only the request (see service/direct.py),
# read the body themselves and let pydantic-core parse and validate it in one pass
# (`model_validate_json`), and check the API key inline: FastAPI's body and header parameter
# machinery cost more than the model call (see docs/performance.md). The OpenAPI description
# below keeps the documented contract identical.
def _documented(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "API key",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
    }


async def _parse(request: Request, model: type[Body]) -> Body:
    request.app.state.keys.check(header(request.scope, HEADER_KEY), Scope.PREDICT)
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None


@scoring_router.post(
    "/predict", response_model=PredictResponse, openapi_extra=_documented(PredictRequest)
)
async def predict(request: Request) -> Response:
    body = await _parse(request, PredictRequest)
    batcher: MicroBatcher = request.app.state.batcher
    features = body.features if body.features is not None else body.transaction
    probability, bundle = await batcher.score_one(_row(features))
    threshold = body.threshold if body.threshold is not None else bundle.threshold
    is_fraud = probability >= threshold
    request_state(request.scope)["model_version"] = bundle.version
    request.app.state.metrics.count_prediction(probability, is_fraud)
    return json_response(
        {
            "request_id": request_id_of(request.scope),
            "model_version": bundle.version,
            "fraud_probability": probability,
            "is_fraud": is_fraud,
            "threshold": threshold,
        }
    )


@scoring_router.post(
    "/predict/batch", response_model=BatchResponse, openapi_extra=_documented(BatchRequest)
)
async def predict_batch(request: Request) -> Response:
    body = await _parse(request, BatchRequest)
    settings: Settings = request.app.state.settings
    registry: ModelRegistry = request.app.state.registry
    n = len(body.transactions)
    if n == 0:
        raise PayloadTooLarge(
            f"transactions is empty: send between 1 and {settings.max_batch_rows} rows",
            code="empty_batch",
        )
    if n > settings.max_batch_rows:
        raise PayloadTooLarge(
            f"transactions has {n} rows; the limit is "
            f"FRAUD_MAX_BATCH_ROWS={settings.max_batch_rows}"
        )
    rows = np.asarray([_row(r) for r in body.transactions], dtype=np.float64)
    scored = await score_batch(registry.require_bundle, rows)
    decisions = scored.decisions()
    request_state(request.scope)["model_version"] = scored.bundle.version
    probabilities = scored.probabilities.tolist()
    flags = decisions.tolist()
    metrics = request.app.state.metrics
    for probability, is_fraud in zip(probabilities, flags, strict=True):
        metrics.count_prediction(probability, is_fraud)
    return json_response(
        {
            "request_id": request_id_of(request.scope),
            "model_version": scored.bundle.version,
            "threshold": scored.bundle.threshold,
            "predictions": [
                {"fraud_probability": p, "is_fraud": d}
                for p, d in zip(probabilities, flags, strict=True)
            ],
        }
    )


@router.get("/model", dependencies=[PredictKey])
async def model(registry: RegistryDep) -> Response:
    bundle = registry.require_bundle()
    return json_response(bundle.manifest.summary() | {"manifest_sha256": bundle.manifest_sha256})


@router.post("/reload", response_model=ReloadOutcome, dependencies=[AdminKey])
async def reload(request: Request, registry: RegistryDep) -> Response:
    try:
        outcome = await registry.reload("api")
    except (StoreError, BundleError) as exc:
        raise as_service_error(exc) from exc
    request_state(request.scope)["model_version"] = outcome.version
    return json_response(asdict(outcome))


@router.get("/health/live")
async def live() -> Response:
    return json_response({"status": "live"})


@router.get("/health/ready")
async def ready(request: Request, registry: RegistryDep) -> Response:
    bundle = registry.bundle
    if bundle is None:
        reason = f"no verified model loaded: {registry.not_ready_reason}"
        return error_response(NotReady(reason), request_id_of(request.scope))
    return json_response({"status": "ready", "model_version": bundle.version})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
