"""HTTP routes. Thin: validate, call the predictor or registry, shape the answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ml.bundle import FEATURE_NAMES, BundleError
from ml.store import StoreError
from service.context import request_id_of, request_state
from service.deps import AdminKey, BatcherDep, PredictKey, RegistryDep, SettingsDep
from service.errors import NotReady, PayloadTooLarge, error_body
from service.predictor import score_batch
from service.registry import as_service_error
from service.schemas import (
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    ReloadResponse,
)

router = APIRouter()


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def _row(values: Any) -> list[float]:
    if isinstance(values, list):
        return values
    return [getattr(values, name) for name in FEATURE_NAMES]


@router.post("/predict", response_model=PredictResponse, dependencies=[PredictKey])
async def predict(body: PredictRequest, request: Request, batcher: BatcherDep) -> Response:
    row = np.asarray([_row(body.features if body.features is not None else body.transaction)])
    probability, bundle = await batcher.score_one(row)
    threshold = body.threshold if body.threshold is not None else bundle.threshold
    request_state(request.scope)["model_version"] = bundle.version
    _count(request, np.asarray([probability]), np.asarray([probability >= threshold]))
    return json_response(
        {
            "request_id": request_id_of(request.scope),
            "model_version": bundle.version,
            "fraud_probability": probability,
            "is_fraud": probability >= threshold,
            "threshold": threshold,
        }
    )


@router.post("/predict/batch", response_model=BatchResponse, dependencies=[PredictKey])
async def predict_batch(
    body: BatchRequest, request: Request, registry: RegistryDep, settings: SettingsDep
) -> Response:
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
    _count(request, scored.probabilities, decisions)
    return json_response(
        {
            "request_id": request_id_of(request.scope),
            "model_version": scored.bundle.version,
            "threshold": scored.bundle.threshold,
            "predictions": [
                {"fraud_probability": float(p), "is_fraud": bool(d)}
                for p, d in zip(scored.probabilities, decisions, strict=True)
            ],
        }
    )


def _count(request: Request, probabilities: np.ndarray, decisions: np.ndarray) -> None:
    metrics = request.app.state.metrics
    frauds = int(decisions.sum())
    if frauds:
        metrics.predictions.labels("fraud").inc(frauds)
    if decisions.size - frauds:
        metrics.predictions.labels("legit").inc(decisions.size - frauds)
    for p in probabilities:
        metrics.scores.observe(float(p))


@router.get("/model", dependencies=[PredictKey])
async def model(registry: RegistryDep) -> Response:
    bundle = registry.require_bundle()
    return json_response(bundle.manifest.summary() | {"manifest_sha256": bundle.manifest_sha256})


@router.post("/reload", response_model=ReloadResponse, dependencies=[AdminKey])
async def reload(request: Request, registry: RegistryDep) -> Response:
    try:
        outcome = await registry.reload("api")
    except (StoreError, BundleError) as exc:
        raise as_service_error(exc) from exc
    request_state(request.scope)["model_version"] = outcome.version
    return json_response(
        {
            "previous_version": outcome.previous_version,
            "version": outcome.version,
            "changed": outcome.changed,
            "took_ms": outcome.took_ms,
            "workers_confirmed": outcome.workers_confirmed,
            "workers_total": outcome.workers_total,
        }
    )


@router.get("/health/live")
async def live() -> Response:
    return json_response({"status": "live"})


@router.get("/health/ready")
async def ready(request: Request, registry: RegistryDep) -> Response:
    bundle = registry.bundle
    if bundle is None:
        reason = f"no verified model loaded: {registry.not_ready_reason}"
        return Response(
            error_body(NotReady.code, reason, request_id_of(request.scope)),
            status_code=503,
            media_type="application/json",
        )
    return json_response({"status": "ready", "model_version": bundle.version})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
