"""The HTTP contract, in-process: real app, real bundle, real local store.

Over 300 lines because it is the API's one contract, endpoint by endpoint; split, a reader
would have to look in several places for what one request may answer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import structlog
from fastapi.testclient import TestClient

from ml.data import Dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.schema import FEATURE_NAMES
from service.app import create_app
from service.observe.logging import configure_logging
from tests.support.app import ADMIN, API_KEY_2, AUTH, make_settings, metrics_text

ROW = [0.5] * 30


def named(values: list[float]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, values, strict=True))


def test_predict_with_features_array(
    client: TestClient, bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    bundle = load_bundle(bundle_files)
    fraud_row = small_dataset.X[small_dataset.y == 1][0].tolist()
    response = client.post("/predict", json={"features": fraud_row}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "request_id",
        "model_version",
        "fraud_probability",
        "is_fraud",
        "threshold",
    }
    assert body["model_version"] == bundle.version
    assert body["threshold"] == bundle.threshold
    expected = float(bundle.score(np.asarray([fraud_row]))[0])
    assert body["fraud_probability"] == pytest.approx(expected, abs=1e-12)
    assert body["is_fraud"] is (expected >= bundle.threshold)
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_with_named_transaction_equals_array(client: TestClient) -> None:
    values = [float(i) / 10 for i in range(30)]
    a = client.post("/predict", json={"features": values}, headers=AUTH).json()
    b = client.post("/predict", json={"transaction": named(values)}, headers=AUTH).json()
    assert a["fraud_probability"] == b["fraud_probability"]


def test_threshold_override(client: TestClient) -> None:
    low = client.post("/predict", json={"features": ROW, "threshold": 1e-9}, headers=AUTH).json()
    high = client.post(
        "/predict", json={"features": ROW, "threshold": 0.999999}, headers=AUTH
    ).json()
    assert low["is_fraud"] is True
    assert low["threshold"] == 1e-9
    assert high["is_fraud"] is False


def test_batch_mixes_row_forms_and_keeps_order(
    client: TestClient, bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    rows = small_dataset.X[:120]
    body = {
        "transactions": [r.tolist() if i % 2 else named(r.tolist()) for i, r in enumerate(rows)]
    }
    response = client.post("/predict/batch", json=body, headers=AUTH)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    expected = load_bundle(bundle_files).score(rows)
    assert [p["fraud_probability"] for p in predictions] == pytest.approx(
        expected.tolist(), abs=1e-12
    )


def test_request_id_is_honoured(client: TestClient) -> None:
    response = client.post(
        "/predict", json={"features": ROW}, headers=AUTH | {"X-Request-ID": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    unsafe = client.post(
        "/predict", json={"features": ROW}, headers=AUTH | {"X-Request-ID": "bad id\twith spaces"}
    )
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/predict", {}, 401, "unauthorized"),
        ("/predict", {"X-API-Key": "wrong"}, 401, "unauthorized"),
        ("/predict", ADMIN, 403, "forbidden"),
        ("/reload", AUTH, 403, "forbidden"),
        ("/reload", {}, 401, "unauthorized"),
    ],
)
def test_auth(
    client: TestClient, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    body = {"features": ROW} if path == "/predict" else None
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_every_listed_key_works(client: TestClient) -> None:
    response = client.post("/predict", json={"features": ROW}, headers={"X-API-Key": API_KEY_2})
    assert response.status_code == 200


def test_model_endpoint(client: TestClient, bundle_files: dict[str, bytes]) -> None:
    assert client.get("/model").status_code == 401
    body = client.get("/model", headers=AUTH).json()
    bundle = load_bundle(bundle_files)
    assert body["version"] == bundle.version
    assert body["feature_names"] == list(FEATURE_NAMES)
    assert body["threshold"] == bundle.threshold
    assert body["manifest_sha256"] == bundle.manifest_sha256
    assert "files" in body
    # The model card names the prevalence its threshold and headline metrics are tuned for;
    # f1, precision and pr_auc are at that prevalence, the sample's are sample_*.
    assert body["prevalence"] == 0.00172
    test = body["metrics"]["test"]
    assert test["prevalence"] == 0.00172
    assert test["precision"] <= test["sample_precision"]
    assert {"sample_f1", "sample_prevalence"} <= test.keys()
    assert "training_rows" not in body  # the fingerprint stays in the manifest


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    assert client.get("/health/ready").json()["status"] == "ready"


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


def test_metrics(client: TestClient) -> None:
    for _ in range(3):
        client.post("/predict", json={"features": ROW}, headers=AUTH)
    client.post("/predict", json={"features": [1]}, headers=AUTH)
    text = metrics_text(client)
    assert 'fraud_http_requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'fraud_http_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    assert 'fraud_predictions_total{label="legit"} 3.0' in text
    assert "fraud_score_count 3.0" in text
    assert 'fraud_model_reloads_total{result="success",trigger="startup"} 1.0' in text
    assert "fraud_model_info{" in text
    assert 'fraud_http_request_duration_seconds_bucket{le="0.001",route="/predict"' in text


def test_access_log_has_one_json_line_per_request_without_secrets(
    local_store: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json", cache=False)
    app = create_app(make_settings(local_store.uri), store=local_store)
    marker = 123.456789
    try:
        with TestClient(app) as client:
            capfd.readouterr()
            client.post("/predict", json={"features": [marker] * 30}, headers=AUTH)
            client.get("/health/live")
            client.get("/health/ready")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    requests = [x for x in lines if x["event"] == "request"]
    assert len(requests) == 1  # health checks are not logged
    line = requests[0]
    assert line["route"] == "/predict"
    assert line["status"] == 200
    assert {"request_id", "latency_ms", "model_version", "timestamp"} <= line.keys()
    everything = json.dumps(lines)
    assert str(marker) not in everything
    assert AUTH["X-API-Key"] not in everything


def test_a_bug_becomes_a_logged_500_with_the_request_id(local_store: Any) -> None:
    app = create_app(make_settings(local_store.uri), store=local_store)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app) as client:
        response = client.get("/boom", headers={"X-Request-ID": "trace-1"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; quote the request_id when reporting it",
        },
        "request_id": "trace-1",
    }
    assert response.headers["x-request-id"] == "trace-1"
    assert 'fraud_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in (
        app.state.service.metrics.render()[0].decode()
    )


def test_one_form_message_and_batch_threshold(client: TestClient) -> None:
    response = client.post("/predict", json={}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "invalid request: body: send exactly one of 'features' (array) or 'transaction' (object)"
    )
    rows = {"transactions": [[0.5] * 30, [0.5] * 30]}
    strict = client.post("/predict/batch", json=rows | {"threshold": 1e-9}, headers=AUTH).json()
    assert strict["threshold"] == 1e-9
    assert [p["is_fraud"] for p in strict["predictions"]] == [True, True]
    refused = client.post("/predict/batch", json=rows | {"threshold": 1.0}, headers=AUTH)
    assert refused.status_code == 422


def test_index_and_the_allow_header_of_a_405(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert index.json()["docs"] == "/docs"
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
