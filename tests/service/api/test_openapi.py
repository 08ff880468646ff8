"""The documented contract (/openapi.json, /docs), in-process: what a client generator, a fuzzer
and Swagger's Authorize button rely on. tests/service/api/test_contract.py fuzzes it for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.runtime.local_store import LocalStore
from ml.runtime.schema import FEATURE_NAMES
from ml.testing.keys import ADMIN, AUTH
from ml.testing.processes import REPO
from service.api.answers import ErrorBody
from service.api.schemas import EXAMPLE_FEATURES, EXAMPLE_TRANSACTION
from service.app import create_app
from tests.support.app import make_settings
from tests.support.sample import committed_rows

ROW = [0.5] * 30


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["paths"][path][method]
    return found


def component(spec: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return found


def request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The named component a route's body refers to."""
    body = operation(spec, "post", path)["requestBody"]["content"]["application/json"]
    return component(spec, body["schema"])


def test_the_hand_parsed_bodies_are_named_typed_components(client: TestClient) -> None:
    """Each body a named schema, /predict's two forms each a closed object of its own: what a
    client generator turns into types (an inline oneOf of `required` lists became `Any`)."""
    spec = client.get("/openapi.json").json()
    body = operation(spec, "post", "/predict")["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    forms = [component(spec, ref) for ref in request_schema(spec, "/predict")["oneOf"]]
    assert [(f["title"], f["required"]) for f in forms] == [
        ("PredictByFeatures", ["features"]),
        ("PredictByTransaction", ["transaction"]),
    ]
    for form in forms:
        assert form["additionalProperties"] is False
        assert form["properties"]["explain"] | {"description": ""} == {
            "type": "integer", "minimum": 0, "maximum": 30, "default": 0, "description": "",
            "title": "Explain",
        }  # fmt: skip
    # No null: the server refuses `"features": null`, so the schema does too.
    assert component(spec, forms[0]["properties"]["features"])["type"] == "array"
    assert component(spec, forms[1]["properties"]["transaction"])["type"] == "object"
    rows = request_schema(spec, "/predict/batch")["properties"]["transactions"]["items"]
    assert rows == {
        "oneOf": [
            {"$ref": "#/components/schemas/FeatureArray"},
            {"$ref": "#/components/schemas/NamedTransaction"},
        ]
    }
    assert "ReloadOutcome" in spec["components"]["schemas"]


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    """Clients and fuzzers follow each $ref from the document's root."""
    spec = client.get("/openapi.json").json()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for item in node for r in refs(item)]
        return []

    found = refs(spec)
    assert found  # the document does use references
    for ref in found:
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]


def test_the_api_key_is_a_security_scheme_per_scope(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    for name in ("PredictKey", "AdminKey"):
        assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes[
            name
        ].items()
    for method, path in (("post", "/predict"), ("post", "/predict/batch"), ("get", "/model")):
        assert operation(spec, method, path)["security"] == [{"PredictKey": []}], path
        assert "parameters" not in operation(spec, method, path)  # the scheme fills the header
    assert operation(spec, "post", "/reload")["security"] == [{"AdminKey": []}]
    for method, path in (("get", "/health/live"), ("get", "/health/ready"), ("get", "/")):
        assert "security" not in operation(spec, method, path)


# One request per documented error status, and the route it was sent to.
ERROR_CASES: list[tuple[int, str, str, bytes | None, dict[str, str]]] = [
    (400, "post", "/predict", b"{not json", AUTH),
    (401, "post", "/predict", json.dumps({"features": ROW}).encode(), {}),
    (403, "post", "/predict/batch", json.dumps({"transactions": [ROW]}).encode(), ADMIN),
    (413, "post", "/predict/batch", json.dumps({"transactions": [ROW] * 1001}).encode(), AUTH),
    (415, "post", "/predict", b"features=1", {**AUTH, "content-type": "text/plain"}),
    (422, "post", "/predict", json.dumps({"features": [1, 2]}).encode(), AUTH),
    (422, "post", "/predict/batch", json.dumps({"transactions": []}).encode(), AUTH),
    (401, "get", "/model", None, {}),
    (403, "post", "/reload", None, AUTH),
]


@pytest.mark.parametrize(("status", "method", "path", "body", "headers"), ERROR_CASES)
def test_each_error_status_is_documented_with_the_shape_it_has(
    client: TestClient,
    status: int,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> None:
    spec = client.get("/openapi.json").json()
    documented = operation(spec, method, path)["responses"]
    assert str(status) in documented, f"{method} {path} answers {status} undocumented"
    schema = documented[str(status)]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    all_headers = {"content-type": "application/json"} | headers
    response = client.request(method.upper(), path, content=body, headers=all_headers)
    assert response.status_code == status, response.text
    ErrorBody.model_validate(response.json())  # the real body has the documented shape


def test_the_batch_bounds_are_this_deployments(local_store: LocalStore) -> None:
    app = create_app(make_settings(local_store.uri, max_batch_rows=7), store=local_store)
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
    transactions = request_schema(spec, "/predict/batch")["properties"]["transactions"]
    assert (transactions["minItems"], transactions["maxItems"]) == (1, 7)


def test_every_documented_request_example_is_answered_200(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/predict", "/predict/batch"):
        examples = request_schema(spec, path)["examples"]
        assert examples
        for example in examples:
            response = client.post(path, json=example, headers=AUTH)
            assert response.status_code == 200, (path, response.text)


def test_the_schema_examples_are_real_rows_of_the_committed_sample() -> None:
    rows = committed_rows()
    transaction = [EXAMPLE_TRANSACTION[name] for name in FEATURE_NAMES]
    for example in (EXAMPLE_FEATURES, transaction):
        assert (rows == np.asarray(example, dtype=float)).all(axis=1).any()
    # The same rows the runnable examples/ use.
    one_array = json.loads((REPO / "examples" / "one-array.json").read_text())
    assert one_array["features"] == EXAMPLE_FEATURES
    flagged = json.loads((REPO / "examples" / "should-flag.json").read_text())
    assert flagged["transaction"] == EXAMPLE_TRANSACTION


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000
    assert client.get("/docs/static/swagger-ui.css").status_code == 200


def test_a_fresh_app_answers_openapi_before_any_model_loads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "empty")
    app = create_app(make_settings(store.uri), store=store)
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 200
