"""The contract clients read and fuzz: what /openapi.json says, and only what the server does.

schemathesis runs against it in `make test` (tests/service/api/test_contract.py), with every
check. What this module settles:
- every `$ref` resolves (request schemas are inlined; pydantic's `$defs` would dangle);
- every error status a route can answer is listed with the one error shape (`ErrorBody`);
- `X-API-Key` is a security scheme per scope, so Swagger's Authorize button works;
- the schemas refuse what the server refuses: exactly one of `features`/`transaction` (no
  null), and a batch of 1 to FRAUD_MAX_BATCH_ROWS rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from service.api.answers import ErrorBody

PREDICT_SCHEME = "PredictKey"
ADMIN_SCHEME = "AdminKey"

ERROR_MEANINGS = {
    400: "The body is not valid JSON.",
    401: "No API key, or an unknown one (header X-API-Key).",
    403: "A valid API key of the other scope.",
    409: "`explain` asked of a model that cannot explain (a bundle made before explanations).",
    413: "The body is over FRAUD_MAX_BODY_BYTES, or the batch over FRAUD_MAX_BATCH_ROWS rows.",
    415: "The body is not application/json.",
    422: "The body does not fit the schema: every problem named, with what was received.",
    502: "The store names a bundle that must not be served (missing, unsigned, tampered...); "
    "the previous model keeps serving.",
    503: "No verified model loaded yet, or the store is unreachable.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for the error statuses a route can answer, in the one error shape."""
    return {
        status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses
    }


SCORING_ERRORS = error_responses(400, 401, 403, 409, 413, 415, 422, 503)


def documented_body(model: type[BaseModel], scheme: str) -> dict[str, Any]:
    """`openapi_extra` for a direct route (service/api/direct.py), which reads its own body and key:
    what FastAPI would have documented from a body parameter and a security dependency."""
    return {
        "security": [{scheme: []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": self_contained(model.model_json_schema())}},
        },
    }


def self_contained(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `#/$defs/...` references replaced by what they name. Embedded in the
    OpenAPI document, such a reference points at the document's root, where no `$defs` is:
    clients and fuzzers could not resolve it."""
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def install_contract(app: FastAPI, *, max_batch_rows: int) -> None:
    """Replace `app.openapi` with one that states this deployment's limits."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _state_limits(schema, max_batch_rows)
            _name_request_schemas(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _request_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body: dict[str, Any] = schema["paths"][path]["post"]["requestBody"]
    return body["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def _state_limits(schema: dict[str, Any], max_batch_rows: int) -> None:
    transactions = _request_schema(schema, "/predict/batch")["properties"]["transactions"]
    transactions["minItems"] = 1
    transactions["maxItems"] = max_batch_rows
    # pydantic writes `features: array | null`; the server refuses an explicit null.
    properties = _request_schema(schema, "/predict")["properties"]
    for name in ("features", "transaction"):
        field = properties[name]
        (not_null,) = [option for option in field.pop("anyOf") if option.get("type") != "null"]
        field.pop("default", None)
        field.update(not_null)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _name_request_schemas(schema: dict[str, Any]) -> None:
    """The request bodies as named components, /predict's two forms each an object of its own
    (an inline `oneOf` of bare `required` lists made generated clients type the body `Any`):
    PredictRequest = PredictByFeatures | PredictByTransaction; BatchRequest's rows are
    FeatureArray | NamedTransaction."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    predict = _request_schema(schema, "/predict")
    properties = predict["properties"]
    components["FeatureArray"] = properties.pop("features")
    components["NamedTransaction"] = properties.pop("transaction")
    for form, field, shape in (
        ("PredictByFeatures", "features", "FeatureArray"),
        ("PredictByTransaction", "transaction", "NamedTransaction"),
    ):
        components[form] = {
            "title": form,
            "type": "object",
            "properties": {field: _ref(shape), **properties},
            "required": [field],
            "additionalProperties": False,
        }
    components["PredictRequest"] = {
        "title": "PredictRequest",
        "description": "One transaction, as an array (`features`) or by name (`transaction`).",
        "oneOf": [_ref("PredictByFeatures"), _ref("PredictByTransaction")],
        "examples": predict.get("examples", []),
    }
    batch = _request_schema(schema, "/predict/batch")
    batch["properties"]["transactions"]["items"] = {
        "oneOf": [_ref("FeatureArray"), _ref("NamedTransaction")]
    }
    components["BatchRequest"] = batch
    for path, name in (("/predict", "PredictRequest"), ("/predict/batch", "BatchRequest")):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = _ref(name)
