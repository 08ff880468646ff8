"""The HTTP contract, in-process: real app, real bundle, real local store. What each endpoint
answers; what it refuses, and how, is in test_api_refusals.py."""

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
from ml.testing.keys import ADMIN, API_KEY_2, AUTH
from service.app import create_app
from service.observe.logging import configure_logging
from tests.support.app import ROW, make_settings, metrics_text, named


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
    # No id sent, none echoed: the answer costs nothing more (its key is <request_id>:0).


def test_transaction_ids_are_echoed_and_rows_without_one_get_theirs(client: TestClient) -> None:
    one = client.post("/predict", json={"features": ROW, "id": "tx-1"}, headers=AUTH).json()
    assert one["id"] == "tx-1"
    rows = [named(ROW) | {"id": "chargeback/7"}, ROW, named(ROW)]
    batch = client.post("/predict/batch", json={"transactions": rows}, headers=AUTH).json()
    request_id = batch["request_id"]
    assert [p["id"] for p in batch["predictions"]] == [
        "chargeback/7",
        f"{request_id}:1",
        f"{request_id}:2",
    ]
    arrays = client.post("/predict/batch", json={"transactions": [ROW] * 3}, headers=AUTH).json()
    assert all("id" not in p for p in arrays["predictions"])  # no row named one


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"features": ROW, "id": ""}, "id"),
        ({"features": ROW, "id": "x" * 65}, "id"),
        ({"features": ROW, "id": "two words"}, "id"),
        ({"features": ROW, "id": 7}, "id"),
        ({"transaction": named(ROW) | {"id": "a"}}, "transaction.id"),  # /predict: top level
    ],
)
def test_a_bad_transaction_id_is_a_422_naming_it(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field


def test_a_bad_row_id_in_a_batch_names_its_row(client: TestClient) -> None:
    rows = [named(ROW), named(ROW) | {"id": "new\nline"}]
    response = client.post("/predict/batch", json={"transactions": rows}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "transactions[1].id"


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
