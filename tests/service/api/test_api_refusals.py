"""What the HTTP API refuses, in-process: each bad request answered with its status, the field at
fault and why, in the one error shape; limits enforced before the body is read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml.testing.keys import AUTH
from service.app import create_app
from tests.support.app import ROW, make_settings, named

BAD_REQUESTS: list[tuple[str, Any, int, str, str]] = [
    (
        "/predict",
        {"features": [1.0] * 29},
        422,
        "features",
        "expected exactly 30 numbers (Time, V1..V28, Amount), received 29",
    ),
    ("/predict", {"features": [1.0] * 31}, 422, "features", "received 31"),
    (
        "/predict",
        {"features": ["1.0", *[1.0] * 29]},
        422,
        "features[0]",
        "Input should be a valid number",
    ),
    ("/predict", {"features": [True, *[1.0] * 29]}, 422, "features[0]", "valid number"),
    ("/predict", {"features": [1.0] * 29 + [None]}, 422, "features[29]", "valid number"),
    (
        "/predict",
        {"transaction": named(ROW) | {"V29": 1.0}},
        422,
        "transaction.V29",
        "Extra inputs are not permitted",
    ),
    (
        "/predict",
        {"transaction": {k: v for k, v in named(ROW).items() if k != "V4"}},
        422,
        "transaction.V4",
        "Field required",
    ),
    (
        "/predict",
        {"features": ROW, "transaction": named(ROW)},
        422,
        "body",
        "send exactly one of 'features' (array) or 'transaction' (object)",
    ),
    ("/predict", {}, 422, "body", "send exactly one of"),
    ("/predict", {"features": ROW, "extra": 1}, 422, "extra", "Extra inputs"),
    ("/predict", {"features": ROW, "threshold": 1.5}, 422, "threshold", "less than 1"),
    ("/predict", {"features": ROW, "threshold": 0}, 422, "threshold", "greater than 0"),
    ("/predict", [1, 2], 422, "body", "Input should be an object"),
    ("/predict", {"features": ROW, "explain": 31}, 422, "explain", "less than or equal to 30"),
    ("/predict", {"features": ROW, "explain": -1}, 422, "explain", "greater than or equal to 0"),
    ("/predict", {"features": ROW, "explain": "5"}, 422, "explain", "valid integer"),
    ("/predict/batch", {"transactions": [ROW], "explain": 2.5}, 422, "explain", "valid integer"),
    ("/predict", {"features": ROW, "explain": True}, 422, "explain", "valid integer"),
    ("/predict", {"features": ROW, "explain": 1e300}, 422, "explain", "less than or equal to 30"),
    ("/predict/batch", {"transactions": [ROW, [1.0] * 3]}, 422, "transactions[1]", "received 3"),
    (
        "/predict/batch",
        {"transactions": [ROW, "x"]},
        422,
        "transactions[1]",
        "each row must be an array of 30 numbers or an object of features",
    ),
    (
        "/predict/batch",
        {"transactions": [named(ROW) | {"Amount": "12"}]},
        422,
        "transactions[0].Amount",
        "valid number",
    ),
    ("/predict/batch", {"transactions": []}, 422, "transactions", "send between 1 and 1000 rows"),
]


@pytest.mark.parametrize(("path", "body", "status", "field", "problem"), BAD_REQUESTS)
def test_bad_input_names_the_field(
    client: TestClient, path: str, body: Any, status: int, field: str, problem: str
) -> None:
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert problem in error["message"]
    if field:
        assert any(d["field"] == field and problem in d["problem"] for d in error["details"])


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client: TestClient, token: str) -> None:
    raw = '{"features": [' + ",".join([token] + ["1"] * 29) + "]}"
    response = client.post(
        "/predict", content=raw, headers=AUTH | {"content-type": "application/json"}
    )
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "features[0]"
    assert "finite number" in detail["problem"]
    assert detail["received"] in ("NaN", "inf", "-inf")  # what was sent, not null


def test_batch_over_the_row_limit_is_413(local_store: Any) -> None:
    app = create_app(make_settings(local_store.uri, max_batch_rows=5), store=local_store)
    with TestClient(app) as client:
        response = client.post("/predict/batch", json={"transactions": [ROW] * 6}, headers=AUTH)
    assert response.status_code == 413
    assert "has 6 rows; the limit is FRAUD_MAX_BATCH_ROWS=5" in response.json()["error"]["message"]


def test_body_over_the_limit_is_refused_before_reading(client: TestClient) -> None:
    big = b"[" + b"1," * 1_100_000 + b"1]"
    response = client.post(
        "/predict", content=big, headers=AUTH | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds the limit of 2097152 bytes" in response.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(300):
            yield b" " * 10_000

    response = client.post(
        "/predict", content=chunks(), headers=AUTH | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=json.dumps({"features": ROW}),
        headers=AUTH | {"content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert "received text/plain" in response.json()["error"]["message"]


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'{"features": [1,', headers=AUTH | {"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_scoring_routes_answer_other_methods_and_paths_like_any_route(
    client: TestClient,
) -> None:
    # The scoring routes bypass FastAPI's router (service/api/direct.py); everything else still
    # reaches it.
    wrong_method = client.get("/predict", headers=AUTH)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert wrong_method.headers["x-request-id"]
    assert client.post("/predict/other", json={"features": ROW}, headers=AUTH).status_code == 404
