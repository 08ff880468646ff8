"""GET /model/live-quality: the newest summary `fraudctl evaluate --live` wrote, read from the
store and passed through field by field; none yet, or one that is not a summary, said so."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from ml.live_report import publish
from ml.runtime.live_summary import LIVE_QUALITY_PREFIX
from ml.runtime.local_store import LocalStore
from ml.testing.keys import AUTH
from tests.support.live import live_report as report


def test_no_report_yet_says_how_to_make_one(client: TestClient) -> None:
    answer = client.get("/model/live-quality", headers=AUTH).json()
    assert answer["status"] == "none"
    assert "fraudctl evaluate --live" in answer["problem"]


def test_the_newest_summary_is_served(client: TestClient, local_store: LocalStore) -> None:
    publish(local_store, report("2026-12-01T10:00:00+00:00", 0.5))
    publish(local_store, report("2026-12-02T10:00:00+00:00", 0.8182))
    answer = client.get("/model/live-quality", headers=AUTH).json()
    assert answer["status"] == "ready"
    (version,) = answer["report"]["versions"]
    assert version["f1"] == 0.8182
    assert version["f1_interval_95"] == [0.7, 0.88]
    assert "confusion" not in version  # only the checked fields


def test_a_summary_that_is_not_one_is_reported_not_served(
    client: TestClient, local_store: LocalStore
) -> None:
    hostile = report("2026-12-03T10:00:00+00:00", 0.8).to_dict()
    hostile["versions"][0]["model_version"] = {"<script>": 1}
    local_store.put_if_absent(
        f"{LIVE_QUALITY_PREFIX}20261203T100000Z.json", json.dumps(hostile).encode()
    )
    answer = client.get("/model/live-quality", headers=AUTH).json()
    assert answer["status"] == "unreadable"
    assert "model_version must be text" in answer["problem"]
    assert client.get("/model/live-quality").status_code == 401
