"""fraudctl rollback: production pointed back at an older version, signed, recorded in the
history, and announced to running services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.cli import main
from ml.runtime.bundle import load_bundle
from ml.runtime.s3_store import S3Store
from ml.testing.processes import free_port
from tests.support.promotion import (
    EXIT_ERROR,
    EXIT_OK,
    bundle_dir,
    live_version,
    promote,
)


def test_rollback_notifies_when_asked(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"s3://{s3_store.bucket}/fraud"
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"))
    url = f"http://127.0.0.1:{free_port()}"
    for name in ("FRAUD_ADMIN_API_KEY", "FRAUD_ADMIN_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["rollback", "--store", uri, "--notify", url]) == 2  # no admin key
    monkeypatch.setenv("FRAUD_ADMIN_API_KEY", "whatever")
    capsys.readouterr()
    assert main(["rollback", "--store", uri, "--notify", url]) == EXIT_OK
    out, err = capsys.readouterr()
    assert json.loads(out)["notify"][0]["ok"] is False
    assert "WARNING: notify" in err
    assert live_version(s3_store) == load_bundle(weak_files).version


def test_rollback_and_history(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"s3://{s3_store.bucket}/fraud"
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"))
    weak, strong = load_bundle(weak_files).version, load_bundle(strong_files).version
    assert main(["rollback", "--store", uri]) == EXIT_OK
    assert live_version(s3_store) == weak
    assert main(["rollback", "--store", uri, "--to", strong]) == EXIT_OK
    assert live_version(s3_store) == strong
    capsys.readouterr()
    assert main(["history", "--store", uri, "--json"]) == EXIT_OK
    history = json.loads(capsys.readouterr().out)
    assert history["live"] == strong
    assert {v["version"]: v["live"] for v in history["versions"]} == {weak: False, strong: True}
    # Newest first, as /model/history lists it.
    assert [e["action"] for e in history["log"]] == ["rollback", "rollback", "promote", "promote"]
    assert all(e["promoted_by"] for e in history["log"])
    assert main(["history", "--store", uri]) == EXIT_OK
    table = capsys.readouterr().out
    assert f"* {strong}" in table
    assert "rollback" in table
    assert main(["rollback", "--store", uri, "--to", "v-nope"]) == EXIT_ERROR
