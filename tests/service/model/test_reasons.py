"""Reason codes through the API, in-process: real app, real bundles, real local store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.data import Dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.layout import MODEL_FILE
from ml.runtime.local_store import LocalStore
from ml.runtime.schema import FEATURE_NAMES
from ml.testing.bundles import promote_files
from ml.testing.keys import AUTH
from service.app import create_app
from tests.support.app import make_settings, wait_ready
from tests.support.bundle_edits import npz_with, with_file


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@pytest.fixture
def fraud_row(small_dataset: Dataset) -> list[float]:
    row: list[float] = small_dataset.X[small_dataset.y == 1][0].tolist()
    return row


def test_explain_answers_the_top_reasons_largest_first(
    client: TestClient, bundle_files: dict[str, bytes], fraud_row: list[float]
) -> None:
    body = client.post("/predict", json={"features": fraud_row, "explain": 5}, headers=AUTH)
    assert body.status_code == 200, body.text
    answer = body.json()
    reasons = answer["reasons"]
    assert len(reasons) == 5
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)
    expected = load_bundle(bundle_files).explain(np.asarray([fraud_row]))
    for reason in reasons:
        i = FEATURE_NAMES.index(reason["feature"])
        assert reason["value"] == fraud_row[i]  # what was sent, not the model input
        assert reason["contribution"] == pytest.approx(expected.contributions[0, i], abs=1e-12)
    assert answer["base_value"] == pytest.approx(expected.base_value, abs=1e-12)
    plain = client.post("/predict", json={"features": fraud_row}, headers=AUTH).json()
    assert answer["fraud_probability"] == pytest.approx(plain["fraud_probability"], abs=1e-12)
    assert "reasons" not in plain
    assert "base_value" not in plain


def test_every_reason_adds_up_to_the_log_odds(client: TestClient, fraud_row: list[float]) -> None:
    named = dict(zip(FEATURE_NAMES, fraud_row, strict=True))
    answer = client.post(
        "/predict", json={"transaction": named, "explain": 30}, headers=AUTH
    ).json()
    assert sorted(r["feature"] for r in answer["reasons"]) == sorted(FEATURE_NAMES)
    total = answer["base_value"] + sum(r["contribution"] for r in answer["reasons"])
    assert total == pytest.approx(logit(answer["fraud_probability"]), abs=1e-6)


def test_batch_rows_each_get_their_reasons(
    client: TestClient, bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    rows = small_dataset.X[:40]
    transactions = [r.tolist() if i % 2 else dict(zip(FEATURE_NAMES, r.tolist(), strict=True))
                    for i, r in enumerate(rows)]  # fmt: skip
    response = client.post(
        "/predict/batch", json={"transactions": transactions, "explain": 3}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = load_bundle(bundle_files).explain(rows)
    for i, prediction in enumerate(predictions):
        assert len(prediction["reasons"]) == 3
        top = np.argsort(-np.abs(expected.contributions[i]), kind="stable")[:3]
        assert [r["feature"] for r in prediction["reasons"]] == [FEATURE_NAMES[j] for j in top]
        assert prediction["fraud_probability"] == pytest.approx(
            expected.probabilities[i], abs=1e-12
        )
    plain = client.post("/predict/batch", json={"transactions": transactions}, headers=AUTH)
    assert all(set(p) == {"fraud_probability", "is_fraud"} for p in plain.json()["predictions"])


def test_the_linear_model_explains_too(
    tmp_path: Path, other_bundle_files: dict[str, bytes], fraud_row: list[float]
) -> None:
    store = LocalStore(tmp_path / "store")
    promote_files(store, other_bundle_files)
    with TestClient(create_app(make_settings(store.uri), store=store)) as client:
        wait_ready(client)
        answer = client.post(
            "/predict", json={"features": fraud_row, "explain": 30}, headers=AUTH
        ).json()
    total = answer["base_value"] + sum(r["contribution"] for r in answer["reasons"])
    assert total == pytest.approx(logit(answer["fraud_probability"]), abs=1e-6)


@pytest.fixture
def unexplainable(tmp_path: Path, bundle_files: dict[str, bytes]) -> Iterator[TestClient]:
    """A bundle made before explanations: its trees carry no cover counts."""
    files = with_file(bundle_files, MODEL_FILE, npz_with(bundle_files, cover=lambda _: None))
    store = LocalStore(tmp_path / "store")
    promote_files(store, files)
    with TestClient(create_app(make_settings(store.uri), store=store)) as client:
        wait_ready(client)
        yield client


def test_a_model_that_cannot_explain_says_so_and_still_scores(
    unexplainable: TestClient, fraud_row: list[float]
) -> None:
    for path, body in [
        ("/predict", {"features": fraud_row, "explain": 1}),
        ("/predict/batch", {"transactions": [fraud_row], "explain": 1}),
    ]:
        response = unexplainable.post(path, json=body, headers=AUTH)
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "explain_unavailable"
        assert "no cover counts" in error["message"]
    plain = unexplainable.post("/predict", json={"features": fraud_row}, headers=AUTH)
    assert plain.status_code == 200
