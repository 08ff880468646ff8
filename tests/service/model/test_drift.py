"""Drift through a real `fraudctl serve` (2 workers, moto S3): rows in over HTTP, PSI out of the
master's metrics port and /drift, over both workers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ml.data import load_dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.drift import SCORE
from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN, AUTH
from ml.testing.processes import EVAL_DATA
from ml.testing.server import Http, ServiceProcess

BATCH = 500
MAX_ROWS = 5000
SHIFT_IN_SD = 0.5  # V14 moved by half its training standard deviation


@pytest.fixture
def served_files(strong_files: dict[str, bytes]) -> dict[str, bytes]:
    """The strong model, whose drift reference is the committed rows'."""
    return strong_files


def drift_in_metrics(server: ServiceProcess) -> tuple[dict[str, float], int | None]:
    """({feature: psi}, live rows) from the master's metrics port."""
    psi: dict[str, float] = {}
    rows = None
    for family in text_string_to_metric_families(server.metrics()):
        for sample in family.samples:
            if sample.name == "fraud_drift_psi":
                psi[sample.labels["feature"]] = sample.value
            elif sample.name == "fraud_drift_live_rows":
                rows = int(sample.value)
    return psi, rows


def wait_counted(server: ServiceProcess, rows: int) -> dict[str, float]:
    """PSI once both workers' housekeeping (0.2 s) has counted `rows` live rows."""
    deadline = time.monotonic() + 10.0
    while True:
        psi, counted = drift_in_metrics(server)
        if counted == rows:
            return psi
        assert time.monotonic() < deadline, f"{counted} live rows counted, expected {rows}"
        time.sleep(0.1)


def test_a_shifted_feature_shows_as_drift_over_both_workers(
    service: ServiceProcess,
    strong_files: dict[str, bytes],
    bundle_files: dict[str, bytes],
    s3_store: S3Store,
) -> None:
    version = load_bundle(strong_files).version
    eval_rows = load_dataset(EVAL_DATA).X
    rng = np.random.default_rng(3)
    live = eval_rows[rng.integers(0, len(eval_rows), MAX_ROWS)]  # live traffic: random order
    v14 = 14
    live[:, v14] += SHIFT_IN_SD * load_dataset(EVAL_DATA).X[:, v14].std()

    assert wait_counted(service, 0) == {}
    crossed_at = None
    with Http(service.port) as first, Http(service.port) as second:
        clients = [first, second]  # reaching both workers
        for sent in range(BATCH, MAX_ROWS + 1, BATCH):
            body = json.dumps({"transactions": live[sent - BATCH : sent].tolist()}).encode()
            status, answer = clients[sent // BATCH % 2].request(
                "POST", "/predict/batch", body, AUTH
            )
            assert status == 200, answer
            psi = wait_counted(service, sent)
            if crossed_at is None and psi["V14"] > 0.2:
                crossed_at = sent
        assert crossed_at is not None, f"V14's PSI stayed at {psi['V14']:.3f} after {MAX_ROWS} rows"
        others = {name: value for name, value in psi.items() if name not in ("V14", SCORE)}
        assert max(others.values()) < 0.1, others
        assert psi[SCORE] >= 0.0  # reported alongside the inputs

        status, report = clients[0].request("GET", "/drift", headers=AUTH)
        assert status == 200
        assert report["model_version"] == version
        assert report["live_rows"] == MAX_ROWS
        assert report["status"] == "measured"
        assert report["psi"]["V14"] == pytest.approx(psi["V14"], abs=1e-6)

        # Another model starts an empty window in every worker: no rows yet, so no PSI.
        promote_files(s3_store, bundle_files)
        status, _ = clients[0].request("POST", "/reload", headers=ADMIN)
        assert status == 200
        assert wait_counted(service, 0) == {}
