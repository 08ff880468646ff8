"""HTTP routes. Thin: authenticate, parse, call the data plane, serialise the answer."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.answers import (
    BatchResponse,
    DriftReport,
    LiveQuality,
    PredictResponse,
    PromotionHistory,
)
from service.api.auth import HEADER, Scope
from service.api.batch_parsing import check_shape, feature_row, parse_batch, validated
from service.api.context import header, request_id_of, request_state
from service.api.deps import AdminKey, DataPlaneDep, PredictKey
from service.api.direct import DirectRoute
from service.api.errors import error_response
from service.api.openapi import PREDICT_SCHEME, SCORING_ERRORS, documented_body, error_responses
from service.api.schemas import BatchRequest, PredictRequest
from service.api.state import service_state
from service.errors import NotReady
from service.model.decision_log import Origin
from service.model.registry import ReloadOutcome

router = APIRouter()
# The two scoring routes: called by `DirectDispatch` without FastAPI's per-request machinery.
scoring_router = APIRouter(route_class=DirectRoute)
HEADER_KEY = HEADER.lower().encode()


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


# The two scoring routes are the hot path. They take only the request (see service/api/direct.py),
# read the body themselves and let pydantic-core parse and validate it in one pass
# (`model_validate_json`), and check the API key inline: FastAPI's body and header parameter
# machinery cost more than the model call (see docs/performance.md). `documented_body` keeps
# the documented contract identical.


async def _body(request: Request) -> tuple[bytes, str]:
    """The body, and the id of the API key that sent it (what the decision log records)."""
    key_id = service_state(request).keys.check(header(request.scope, HEADER_KEY), Scope.PREDICT)
    return await request.body(), key_id


@scoring_router.post(
    "/predict",
    response_model=PredictResponse,
    responses=SCORING_ERRORS,
    openapi_extra=documented_body(PredictRequest, PREDICT_SCHEME),
)
async def predict(request: Request) -> Response:
    received_at = time.time()
    plane = service_state(request).dataplane
    raw, key_id = await _body(request)
    check_shape(raw, plane.check_batch_size)
    body = validated(raw, PredictRequest)
    features = body.features if body.features is not None else body.transaction
    request_id = request_id_of(request.scope) or ""
    origin = Origin(request_id, key_id, received_at, None if body.id is None else [body.id])
    prediction = await plane.predict(feature_row(features), body.threshold, body.explain, origin)
    request_state(request.scope)["model_version"] = prediction.model_version
    answer: dict[str, Any] = {
        "request_id": request_id,
        "model_version": prediction.model_version,
        "fraud_probability": prediction.fraud_probability,
        "is_fraud": prediction.is_fraud,
        "threshold": prediction.threshold,
    }
    if prediction.reasons is not None:
        answer |= {"base_value": prediction.base_value, "reasons": prediction.reasons}
    if body.id is not None:
        answer["id"] = body.id
    return json_response(answer)


@scoring_router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=SCORING_ERRORS,
    openapi_extra=documented_body(BatchRequest, PREDICT_SCHEME),
)
async def predict_batch(request: Request) -> Response:
    received_at = time.time()
    plane = service_state(request).dataplane
    raw, key_id = await _body(request)
    parsed = parse_batch(raw, plane.check_batch_size)
    request_id = request_id_of(request.scope) or ""
    origin = Origin(request_id, key_id, received_at, parsed.ids)
    batch = await plane.predict_batch(parsed.rows, parsed.threshold, parsed.explain, origin)
    request_state(request.scope)["model_version"] = batch.model_version
    predictions: list[dict[str, Any]] = [
        {"fraud_probability": p, "is_fraud": d}
        for p, d in zip(batch.fraud_probabilities, batch.is_fraud, strict=True)
    ]
    if parsed.ids is not None:  # some row named its id: every answer says its own
        for row, (prediction, given) in enumerate(zip(predictions, parsed.ids, strict=True)):
            prediction["id"] = f"{request_id}:{row}" if given is None else given
    if batch.reasons is not None:
        for prediction, reasons in zip(predictions, batch.reasons, strict=True):
            prediction |= {"base_value": batch.base_value, "reasons": reasons}
    return json_response(
        {
            "request_id": request_id,
            "model_version": batch.model_version,
            "threshold": batch.threshold,
            "predictions": predictions,
        }
    )


@router.get("/model", dependencies=[PredictKey], responses=error_responses(401, 403, 503))
async def model(plane: DataPlaneDep) -> Response:
    return json_response(plane.model_card())


@router.get(
    "/model/history",
    response_model=PromotionHistory,
    dependencies=[PredictKey],
    responses=error_responses(401, 403, 502, 503),
)
async def model_history(plane: DataPlaneDep) -> Response:
    """The latest 20 promotions, rollbacks and migrations, newest first."""
    return json_response(await plane.promotion_history())


@router.get(
    "/model/live-quality",
    response_model=LiveQuality,
    dependencies=[PredictKey],
    responses=error_responses(401, 403, 502, 503),
)
async def live_quality(plane: DataPlaneDep) -> Response:
    """How the served models did on labelled live traffic: the newest summary `fraudctl
    evaluate --live` wrote (the decision log joined with imported labels)."""
    return json_response(await plane.live_quality())


@router.get(
    "/drift",
    response_model=DriftReport,
    dependencies=[PredictKey],
    responses=error_responses(401, 403, 503),
)
async def drift(plane: DataPlaneDep) -> Response:
    """Population stability of the served model's inputs and score against its training rows,
    over all workers (the same figures as `fraud_drift_psi` on the metrics port)."""
    return json_response(plane.drift_report())


@router.post(
    "/reload",
    response_model=ReloadOutcome,
    dependencies=[AdminKey],
    responses=error_responses(401, 403, 502, 503),
)
async def reload(request: Request, plane: DataPlaneDep) -> Response:
    outcome = await plane.reload()  # a failed load's error is answered by service.api.errors
    request_state(request.scope)["model_version"] = outcome.version
    return json_response(asdict(outcome))


@router.get("/")
async def index() -> Response:
    """Where to go from here: a newcomer's GET / is no bare 404."""
    return json_response(
        {
            "service": "fraud scoring",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "endpoints": {
                "POST /predict": "one transaction (X-API-Key)",
                "POST /predict/batch": "many transactions (X-API-Key)",
                "GET /model": "the live model card (X-API-Key)",
                "GET /model/history": "the latest promotions and rollbacks (X-API-Key)",
                "GET /model/live-quality": "live precision, recall, F1 from labels (X-API-Key)",
                "GET /ui/": "the console: score, reasons, model card, drift",
                "GET /drift": "input and score drift (PSI) of the live model (X-API-Key)",
                "POST /reload": "follow production.json now (admin X-API-Key)",
                "GET /health/live": "the process is up",
                "GET /health/ready": "a verified model is loaded",
            },
        }
    )


@router.get("/health/live")
async def live() -> Response:
    return json_response({"status": "live"})


@router.get("/health/ready", responses=error_responses(503))
async def ready(request: Request, plane: DataPlaneDep) -> Response:
    bundle = plane.serving()
    if bundle is None:
        reason = f"no verified model loaded: {plane.registry.not_ready_reason}"
        return error_response(NotReady(reason), request_id_of(request.scope))
    return json_response({"status": "ready", "model_version": bundle.version})
