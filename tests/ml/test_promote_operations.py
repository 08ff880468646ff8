"""fraudctl rollback, history and evaluate, and promote's failures (bad input, unreachable store,
usage, notify), through the CLI against moto-server S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ml.cli import main
from ml.runtime.bundle import load_bundle
from ml.runtime.history import read_history
from ml.runtime.s3_store import S3Store
from ml.testing.processes import DEV_DATA, EVAL_DATA, free_port
from tests.support.promotion import (
    EXIT_ERROR,
    EXIT_KEPT,
    EXIT_OK,
    EXIT_USAGE,
    bundle_dir,
    live_version,
    promote,
    snapshot,
)


def test_evaluate_from_dir_and_store(
    tmp_path: Path,
    s3_store: S3Store,
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = bundle_dir(tmp_path, strong_files, "strong")
    assert main(["evaluate", "--bundle", str(candidate), "--data", str(EVAL_DATA), "--json"]) == 0
    from_dir = json.loads(capsys.readouterr().out)
    promote(s3_store, candidate)
    capsys.readouterr()
    uri = f"s3://{s3_store.bucket}/fraud"
    assert main(["evaluate", "--store", uri, "--data", str(EVAL_DATA), "--json"]) == 0
    from_store = json.loads(capsys.readouterr().out)
    assert from_dir["metrics"] == from_store["metrics"]
    assert from_store["metrics"]["rows"] == 3_861
    assert from_store["metrics"]["prevalence"] == 0.00172
    assert main(["evaluate", "--store", uri, "--data", str(EVAL_DATA)]) == 0
    out = capsys.readouterr().out
    assert "metrics at prevalence 0.00172 first" in out
    assert "sample_f1" in out


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def bad_inputs(tmp_path: Path, files: dict[str, bytes]) -> dict[str, tuple[list[str], str]]:
    good = bundle_dir(tmp_path, files, "good")
    tampered = bundle_dir(tmp_path, files, "tampered")
    (tampered / "model.joblib").write_bytes(b"not a model")
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    header = ",".join(
        f'"{c}"' for c in ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
    )
    wrong_schema = write_csv(tmp_path / "schema.csv", header.replace('"V5",', ""), ["1"])
    one_class = write_csv(tmp_path / "one.csv", header, [",".join(["0.1"] * 30) + ',"0"'] * 3)
    return {
        "missing-candidate": ([str(tmp_path / "nope"), str(EVAL_DATA)], "does not exist"),
        "unreadable-bundle": ([str(unreadable), str(EVAL_DATA)], "has no manifest.json"),
        "tampered-bundle": ([str(tampered), str(EVAL_DATA)], "model.joblib has sha256"),
        "wrong-schema": ([str(good), str(wrong_schema)], "missing columns ['V5']"),
        "single-class": ([str(good), str(one_class)], "all 3 rows have the same label"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing-candidate", "unreadable-bundle", "tampered-bundle", "wrong-schema", "single-class"],
)
def test_bad_input_is_exit_1_and_leaves_the_store_untouched(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    before = snapshot(s3_store)
    capsys.readouterr()
    (candidate, data), message = bad_inputs(tmp_path, strong_files)[case]
    assert promote(s3_store, Path(candidate), data=Path(data)) == EXIT_ERROR
    assert message in capsys.readouterr().err
    assert snapshot(s3_store) == before


def test_unreachable_store_is_exit_1(
    tmp_path: Path,
    strong_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    moto_endpoint: str,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    code = main(
        [
            "promote",
            "--candidate",
            str(bundle_dir(tmp_path, strong_files, "s")),
            "--data",
            str(EVAL_DATA),
            "--store",
            "s3://bucket/fraud",
        ]
    )
    assert code == EXIT_ERROR
    assert "Could not connect to the endpoint URL" in capsys.readouterr().err


def test_notify_without_admin_key_is_a_usage_error(
    tmp_path: Path,
    s3_store: S3Store,
    strong_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FRAUD_ADMIN_API_KEY", raising=False)
    monkeypatch.delenv("FRAUD_ADMIN_API_KEYS", raising=False)
    before = snapshot(s3_store)
    code = promote(
        s3_store, bundle_dir(tmp_path, strong_files, "s"), "--notify", "http://127.0.0.1:1"
    )
    assert code == EXIT_USAGE
    assert snapshot(s3_store) == before


def test_failed_notify_is_reported_but_the_promotion_stands(
    tmp_path: Path,
    s3_store: S3Store,
    strong_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FRAUD_ADMIN_API_KEY", "whatever")
    url = f"http://127.0.0.1:{free_port()}"
    code = promote(s3_store, bundle_dir(tmp_path, strong_files, "s"), "--notify", url)
    out, err = capsys.readouterr()
    assert code == EXIT_OK
    notify: list[dict[str, Any]] = json.loads(out)["notify"]
    assert notify[0]["ok"] is False
    assert notify[0]["attempts"] == 4
    assert "WARNING: notify" in err
    assert "when they next poll" in err
    assert live_version(s3_store) == load_bundle(strong_files).version


def test_usage_errors_exit_2() -> None:
    for argv in (
        ["promote"],
        ["promote", "--candidate", "x", "--data", "y"],
        ["rollback"],
        ["evaluate", "--data", "x"],
    ):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == EXIT_USAGE


def test_promote_notifies_a_running_service(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ml.testing.keys import ADMIN_KEY, AUTH
    from ml.testing.server import PREDICT_BODY, once, server_env, serving

    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    with serving(tmp_path, server_env(s3_store)) as server:
        monkeypatch.setenv("FRAUD_ADMIN_API_KEY", ADMIN_KEY)
        capsys.readouterr()
        url = f"http://127.0.0.1:{server.port}"
        assert (
            promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"), "--notify", url)
            == EXIT_OK
        )
        notify = json.loads(capsys.readouterr().out)["notify"]
        strong = load_bundle(strong_files).version
        assert notify[0]["ok"] is True
        assert notify[0]["response"]["version"] == strong
        assert notify[0]["response"]["workers_confirmed"] == 2
        seen = {
            once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)[1]["model_version"]
            for _ in range(20)
        }
        assert seen == {strong}


def test_evaluation_rows_a_model_trained_on_are_refused_unless_allowed(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    before = snapshot(s3_store)
    strong = bundle_dir(tmp_path, strong_files, "strong")
    capsys.readouterr()
    assert promote(s3_store, strong, data=DEV_DATA) == EXIT_ERROR  # the rows it trained on
    err = capsys.readouterr().err
    strong_version = load_bundle(strong_files).version
    assert f"overlaps the rows a model was trained on ({strong_version}: " in err
    assert "of 11579 rows" in err
    assert snapshot(s3_store) == before
    assert main(["evaluate", "--bundle", str(strong), "--data", str(DEV_DATA)]) == EXIT_ERROR
    assert promote(s3_store, strong, "--allow-overlap", data=DEV_DATA) == EXIT_OK
    entry = read_history(s3_store).entries[0]
    assert entry.details["allow_overlap"] is True
    overlap = {o["version"]: o["rows"] for o in entry.details["training_overlap"]}
    assert overlap[strong_version] > 9000


def test_the_gate_can_require_pr_auc_not_to_drop(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"))
    weak = bundle_dir(tmp_path, weak_files, "weak")
    capsys.readouterr()
    # A drop of up to 1.0 allowed: F1 alone decides (the weak model loses on F1).
    assert promote(s3_store, weak, "--min-delta", "-1", "--max-prauc-drop", "1") == EXIT_OK
    promote(s3_store, bundle_dir(tmp_path, strong_files, "again"))
    capsys.readouterr()
    # The same deliberate F1 override, but PR-AUC may not drop at all: kept.
    assert promote(s3_store, weak, "--min-delta", "-1", "--max-prauc-drop", "0") == EXIT_KEPT
    err = capsys.readouterr().err
    assert "more than --max-prauc-drop 0: production kept" in err
    assert main(["history", "--store", f"s3://{s3_store.bucket}/fraud"]) == EXIT_OK
    table = capsys.readouterr().out
    assert "KEEP" in table
    kept = read_history(s3_store).entries[0]
    assert kept.action == "keep"
    assert f"{kept.details['candidate_f1']:.4f} / {kept.details['production_f1']:.4f}" in table
