"""The console at /ui/: its files over HTTP (size, no CDN, security headers, real examples),
then a real headless Chromium driving it against a real `fraudctl serve`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.data import load_dataset
from ml.live_report import publish
from ml.runtime.bundle import load_bundle
from ml.runtime.history import record_history
from ml.runtime.s3_store import S3Store
from ml.runtime.store import Pointer, utc_now
from ml.testing.bundles import promote_files
from ml.testing.keys import API_KEY, AUTH
from ml.testing.processes import EVAL_DATA, REPO
from ml.testing.server import ServiceProcess, once, server_env, serving
from tests.support.browser import Browser
from tests.support.live import live_report

PAGE_BUDGET_BYTES = 100 * 1024
LIVE_ROWS = 2000
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def test_the_page_and_everything_it_loads_fit_in_100_kb(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = ASSET.findall(page.text)
    assert sorted(assets) == ["console.css", "console.js"]
    total = len(page.content)
    for name in [*assets, "examples.json"]:  # the script fetches the examples itself
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        total += len(response.content)
        # No CDN, no other origin: every reference is relative to the page.
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", response.text), name
    assert total <= PAGE_BUDGET_BYTES, f"{total} bytes"


def test_the_console_may_only_run_its_own_script_and_call_this_service(
    client: TestClient,
) -> None:
    headers = client.get("/ui/").headers
    policy = dict(
        part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui", follow_redirects=False).headers["location"].endswith("/ui/")
    missing = client.get("/ui/missing.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_console_examples_are_the_repository_examples(client: TestClient) -> None:
    examples = client.get("/ui/examples.json").json()
    for name, example in examples.items():
        assert example["body"] == json.loads((REPO / "examples" / f"{name}.json").read_text())


def test_model_history_lists_promotions_newest_first_and_counts_junk(
    tmp_path: Path, s3_store: S3Store, bundle_files: dict[str, bytes]
) -> None:
    version = promote_files(s3_store, bundle_files)
    for action in ("promote", "rollback"):
        record_history(s3_store, Pointer(version, "0" * 64, None, utc_now(), action=action))
    s3_store.put_if_absent("history/zzz-junk.json", b"<script>alert(1)</script>")
    wrong_types = {
        "version": 5,
        "manifest_sha256": "0",
        "previous_version": None,
        "promoted_at": "",
    }
    s3_store.put_if_absent("history/zzz-types.json", json.dumps(wrong_types).encode())
    with serving(tmp_path, server_env(s3_store)) as server:
        status, history = once(server.port, "GET", "/model/history", headers=AUTH)
    assert status == 200
    assert [e["action"] for e in history["entries"]] == ["rollback", "promote"]
    assert history["unreadable"] == 2


@pytest.fixture
def console_service(
    tmp_path: Path, s3_store: S3Store, strong_files: dict[str, bytes]
) -> Iterator[ServiceProcess]:
    version = promote_files(s3_store, strong_files)
    record_history(
        s3_store,
        Pointer(version, load_bundle(strong_files).manifest_sha256, None, utc_now(),
                promoted_by="ml-engineer", action="promote",
                details={"reason": "first model"}),
    )  # fmt: skip
    publish(s3_store, live_report("2026-12-02T10:00:00+00:00", 0.8182))
    with serving(tmp_path, server_env(s3_store)) as server:
        yield server


def test_a_browser_scores_an_example_and_sees_why(
    console_service: ServiceProcess, strong_files: dict[str, bytes], tmp_path: Path
) -> None:
    profile = tmp_path / "chromium"
    profile.mkdir()
    with Browser(profile) as browser:
        browser.open(f"http://127.0.0.1:{console_service.port}/ui/")
        browser.wait_for("document.getElementById('example').options.length > 0")
        assert browser.evaluate("document.getElementById('example').value") == "should-flag"
        browser.evaluate(
            f"document.getElementById('api-key').value = {json.dumps(API_KEY)};"
            "document.querySelector('#key-form button[type=submit]').click(); true"
        )
        assert browser.evaluate("sessionStorage.length") == 1
        assert browser.evaluate("localStorage.length") == 0  # the key outlives no tab
        browser.evaluate("document.getElementById('score-button').click(); true")
        browser.wait_for("!document.getElementById('result').hidden")
        shown = browser.evaluate(
            "({decision: document.getElementById('decision').textContent,"
            " probability: Number(document.getElementById('probability').textContent),"
            " threshold: Number(document.getElementById('threshold').textContent),"
            " reasons: [...document.querySelectorAll('#reasons .label')].map(e => e.textContent),"
            " bars: document.querySelectorAll('#reasons .bar').length,"
            " error: document.getElementById('score-error').textContent})"
        )
        assert shown["error"] == ""
        assert shown["decision"] == "FLAGGED"
        assert shown["probability"] >= shown["threshold"]
        assert len(shown["reasons"]) == shown["bars"] == 8
        assert shown["reasons"][0].startswith("V")  # "V14 = -13.9695", say

        version = load_bundle(strong_files).version
        browser.wait_for(f"document.getElementById('model-card').textContent.includes('{version}')")
        assert browser.evaluate("document.querySelectorAll('#history tbody tr').length") == 1
        assert "first model" in browser.evaluate("document.getElementById('history').textContent")
        browser.wait_for("document.querySelectorAll('#live-table tbody tr').length === 1")
        live = browser.evaluate("document.getElementById('live-table').textContent")
        assert "0.8182 [0.700, 0.880]" in live
        # Some live traffic for the drift panel: 2,000 evaluation rows from across both days
        # (the file is in time order: its first 2,000 rows are a few hours, which drift).
        eval_rows = load_dataset(EVAL_DATA).X
        picked = np.random.default_rng(5).choice(len(eval_rows), LIVE_ROWS, replace=False)
        rows = eval_rows[picked].tolist()
        body = json.dumps({"transactions": rows[:1000]}).encode()
        assert once(console_service.port, "POST", "/predict/batch", body, AUTH)[0] == 200
        body = json.dumps({"transactions": rows[1000:]}).encode()
        assert once(console_service.port, "POST", "/predict/batch", body, AUTH)[0] == 200
        browser.wait_for(  # refreshed until both workers' housekeeping has counted them
            "(document.getElementById('drift-refresh').click(),"
            " document.getElementById('drift-summary').textContent"
            f".includes('over the {LIVE_ROWS + 1} live'))"
        )
        assert browser.evaluate("document.querySelectorAll('#drift-bars .bar').length") == 31

        shot = Path(os.environ.get("CONSOLE_SCREENSHOT", tmp_path / "console.png"))
        browser.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
