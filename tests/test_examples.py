"""examples/: request bodies that run verbatim, and the typed client, against a real
`fraudctl serve` (2 workers, moto S3)."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ml.runtime.s3_store import S3Store
from ml.runtime.schema import FEATURE_NAMES
from ml.testing.bundles import promote_files
from ml.testing.keys import API_KEY
from ml.testing.server import ServiceProcess, once, server_env
from service.client import FraudAPIError, FraudClient, read_rows
from tests.support.sample import committed_rows

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BODIES = sorted(EXAMPLES.glob("*.json"))


def as_array(row: object) -> list[float]:
    if isinstance(row, dict):
        return [float(row[name]) for name in FEATURE_NAMES]
    assert isinstance(row, list)
    return [float(v) for v in row]


def test_every_example_row_is_a_real_row_of_the_committed_sample() -> None:
    assert {p.name for p in BODIES} == {
        "one-array.json",
        "one-named.json",
        "batch-mixed.json",
        "should-flag.json",
        "should-flag-explained.json",
        "should-pass.json",
    }
    rows = committed_rows()
    for path in BODIES:
        for row in read_rows(str(path)):
            assert (rows == np.asarray(as_array(row))).all(axis=1).any(), path.name


def test_every_example_body_is_answered_as_sent(service: ServiceProcess) -> None:
    """What the README's `curl -d @examples/...` lines send, byte for byte."""
    auth = {"X-API-Key": API_KEY}
    for path in BODIES:
        route = "/predict/batch" if path.name.startswith("batch") else "/predict"
        status, body = once(service.port, "POST", route, path.read_bytes(), auth)
        assert status == 200, (path.name, body)
    _, flagged = once(
        service.port, "POST", "/predict", (EXAMPLES / "should-flag.json").read_bytes(), auth
    )
    _, passed = once(
        service.port, "POST", "/predict", (EXAMPLES / "should-pass.json").read_bytes(), auth
    )
    assert flagged["is_fraud"] is True
    assert passed["is_fraud"] is False
    _, explained = once(
        service.port,
        "POST",
        "/predict",
        (EXAMPLES / "should-flag-explained.json").read_bytes(),
        auth,
    )
    sizes = [abs(r["contribution"]) for r in explained["reasons"]]
    assert len(sizes) == 3
    assert sizes == sorted(sizes, reverse=True)


def test_the_client_asks_for_reasons(service: ServiceProcess) -> None:
    rows = list(read_rows(str(EXAMPLES / "batch-mixed.json")))
    with FraudClient(f"http://127.0.0.1:{service.port}", API_KEY) as client:
        one = client.predict(rows[1], explain=len(FEATURE_NAMES))
        many = client.score(rows, explain=2)
        plain = client.predict(rows[1])
    assert one.base_value is not None
    total = one.base_value + sum(r.contribution for r in one.reasons)
    assert total == pytest.approx(math.log(one.fraud_probability / (1 - one.fraud_probability)))
    assert [len(p.reasons) for p in many] == [2, 2, 2]
    assert plain.reasons == ()
    assert plain.base_value is None


def test_the_client_scores_in_batches_and_keeps_row_order(service: ServiceProcess) -> None:
    rows = [*read_rows(str(EXAMPLES / "batch-mixed.json"))] * 5  # 15 rows, both forms
    with FraudClient(f"http://127.0.0.1:{service.port}", API_KEY, batch_rows=4) as client:
        batched = client.score(rows)
        one_by_one = [client.predict(row) for row in rows]
        card = client.model()
    assert len(batched) == 15  # four requests: 4 + 4 + 4 + 3 rows
    assert [p.fraud_probability for p in batched] == pytest.approx(
        [p.fraud_probability for p in one_by_one], abs=1e-12
    )
    assert {p.model_version for p in batched} == {card["version"]}


def test_the_client_raises_the_services_error_with_its_details(service: ServiceProcess) -> None:
    base = f"http://127.0.0.1:{service.port}"
    with FraudClient(base, API_KEY) as client, pytest.raises(FraudAPIError) as refused:
        client.predict([1.0, 2.0])
    assert refused.value.status == 422
    assert refused.value.code == "invalid_input"
    assert refused.value.details[0]["field"] == "features"
    with FraudClient(base, "wrong", attempts=1) as client, pytest.raises(FraudAPIError) as denied:
        client.model()
    assert denied.value.status == 401


def test_the_client_retries_a_503_until_a_model_is_served(
    tmp_path: Path, s3_store: S3Store, bundle_files: dict[str, bytes]
) -> None:
    env = server_env(
        s3_store,
        FRAUD_STARTUP_LOAD_WAIT_S="0",
        FRAUD_STARTUP_RETRY_INITIAL_S="0.1",
        FRAUD_STARTUP_RETRY_MAX_S="0.2",
    )
    server = ServiceProcess(tmp_path, env).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if once(server.port, "GET", "/health/live")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        row = json.loads((EXAMPLES / "one-array.json").read_text())["features"]
        base = f"http://127.0.0.1:{server.port}"
        with (
            FraudClient(base, API_KEY, attempts=1) as impatient,
            pytest.raises(FraudAPIError) as not_yet,
        ):
            impatient.predict(row)
        assert not_yet.value.status == 503
        later = threading.Timer(1.0, promote_files, args=(s3_store, bundle_files))
        later.start()
        with FraudClient(base, API_KEY, attempts=8, backoff_s=0.2) as patient:
            prediction = patient.predict(row)  # 503s while nothing is promoted, then 200
        later.join()
        assert 0.0 <= prediction.fraud_probability <= 1.0
    finally:
        server.stop()


def test_the_client_sends_transaction_ids_and_reads_them_back(service: ServiceProcess) -> None:
    row = next(read_rows(str(EXAMPLES / "should-flag.json")))
    named = dict(zip(FEATURE_NAMES, as_array(row), strict=True))
    with FraudClient(f"http://127.0.0.1:{service.port}", API_KEY) as client:
        assert client.predict(row).id is None  # none sent, none echoed
        assert client.predict(row, transaction_id="tx-1").id == "tx-1"
        assert client.predict(named | {"id": "tx-2"}).id == "tx-2"
        scored = client.score([named | {"id": "tx-3"}, as_array(row)])
    assert scored[0].id == "tx-3"
    assert scored[1].id is not None
    assert scored[1].id.endswith(":1")  # another row named one: this row's key is given too
