"""Against a real `fraudctl serve` (2 workers): bodies an attacker sends get a 4xx naming the
problem, never a 500, and are refused on their counts before any item is validated."""

from __future__ import annotations

import gzip
import json

import pytest

from ml.testing.hostile import HOSTILE_BODIES, HostileBody
from ml.testing.keys import AUTH
from ml.testing.server import PREDICT_BODY, ServiceProcess, once

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", HOSTILE_BODIES, ids=[case.name for case in HOSTILE_BODIES])
def test_hostile_bodies_are_named_4xx_refusals(service: ServiceProcess, case: HostileBody) -> None:
    assert len(case.body) <= 2 * 1024 * 1024
    status, answer = once(service.port, "POST", case.path, case.body, AUTH)
    assert status == case.status, answer
    assert case.says in answer["error"]["message"], answer
    if status == 422 and "at most" in case.says:
        assert answer["error"]["details"][0]["received"] >= 180_000


def gzip_headers() -> dict[str, str]:
    return AUTH | {"Content-Encoding": "gzip"}


def test_a_gzip_body_is_scored_as_the_plain_one(service: ServiceProcess) -> None:
    plain_status, plain = once(service.port, "POST", "/predict", PREDICT_BODY, AUTH)
    status, zipped = once(
        service.port, "POST", "/predict", gzip.compress(PREDICT_BODY), gzip_headers()
    )
    assert (status, plain_status) == (200, 200)
    assert zipped["fraud_probability"] == plain["fraud_probability"]


def test_the_body_limit_applies_to_a_gzip_body_inflated(service: ServiceProcess) -> None:
    bomb = gzip.compress(b'{"features": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100 * 1024  # 50 MB of JSON in ~50 KB
    status, answer = once(service.port, "POST", "/predict", bomb, gzip_headers())
    assert status == 413, answer
    assert "once decompressed" in answer["error"]["message"]


def test_a_false_or_unsupported_coding_is_refused(service: ServiceProcess) -> None:
    status, answer = once(service.port, "POST", "/predict", PREDICT_BODY, gzip_headers())
    assert (status, answer["error"]["code"]) == (400, "bad_request"), answer
    assert "not valid gzip" in answer["error"]["message"]
    headers = AUTH | {"Content-Encoding": "br"}
    status, answer = once(service.port, "POST", "/predict", PREDICT_BODY, headers)
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type"), answer
    assert "received br" in answer["error"]["message"]


def test_failure_counters_exist_at_zero_before_any_failure(service: ServiceProcess) -> None:
    text = service.metrics()
    for series in (
        'fraud_model_reloads_total{result="failure",trigger="api"}',
        'fraud_model_reloads_total{result="failure",trigger="poll"}',
        'fraud_model_refusals_total{reason="bad_signature"}',
        'fraud_background_errors_total{task="poll"}',
    ):
        values = [line.split()[-1] for line in text.splitlines() if line.startswith(series)]
        assert values == ["0.0"], (series, values)


def test_a_batch_that_is_fine_is_unaffected_by_the_guard(service: ServiceProcess) -> None:
    """A large valid batch of named rows (past the guard's size floor) still scores."""
    named = json.dumps(
        {
            "transactions": [
                dict(zip([f"V{i}" for i in range(1, 29)], [0.5] * 28, strict=True))
                | {"Time": 1.0, "Amount": 2.0}
                for _ in range(300)
            ]
        }
    ).encode()
    assert len(named) > 16 * 1024
    status, answer = once(service.port, "POST", "/predict/batch", named, AUTH)
    assert status == 200, answer
    assert len(answer["predictions"]) == 300
