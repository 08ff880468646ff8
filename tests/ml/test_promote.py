"""fraudctl promote / rollback / history / evaluate, through the CLI, against moto-server S3
and the real data sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ml.bundle import load_bundle, write_bundle
from ml.cli import main
from ml.data import Dataset
from ml.promote import decide, evaluate_bundle
from ml.store import S3Store, read_history
from ml.train import train_bundle
from tests.conftest import DEV_DATA, REPO, free_port

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_KEPT = 0, 1, 2, 3


@pytest.fixture(scope="module")
def strong_files(dev_dataset: Dataset) -> dict[str, bytes]:
    """HGB on the whole sample: the stronger model on the sample."""
    return train_bundle(dev_dataset, seed=0)


@pytest.fixture(scope="module")
def weak_files(small_dataset: Dataset) -> dict[str, bytes]:
    """A linear model on a quarter of the sample: clearly weaker."""
    return train_bundle(small_dataset, model_name="logreg", seed=2)


def bundle_dir(tmp_path: Path, files: dict[str, bytes], name: str) -> Path:
    write_bundle(tmp_path / name, files)
    return tmp_path / name


def snapshot(store: S3Store) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list_keys("")}


def promote(store: S3Store, candidate: Path, *extra: str, data: Path = DEV_DATA) -> int:
    return main(
        [
            "promote",
            "--candidate",
            str(candidate),
            "--data",
            str(data),
            "--store",
            f"s3://{store.bucket}/fraud",
            *extra,
        ]
    )


def live_version(store: S3Store) -> str | None:
    pointer = store.current_pointer().pointer
    return pointer.version if pointer else None


def test_first_candidate_is_promoted_plainly(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert promote(s3_store, bundle_dir(tmp_path, weak_files, "weak")) == EXIT_OK
    out, err = capsys.readouterr()
    decision = json.loads(out)
    assert decision["promoted"] is True
    assert decision["production"] is None
    assert "no production model yet: the first candidate is promoted" in err
    assert live_version(s3_store) == load_bundle(weak_files).version


def test_better_candidate_is_promoted_with_report(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    capsys.readouterr()
    report = tmp_path / "report"
    code = promote(
        s3_store, bundle_dir(tmp_path, strong_files, "strong"), "--report-dir", str(report)
    )
    assert code == EXIT_OK
    decision = json.loads(capsys.readouterr().out)
    strong, weak = load_bundle(strong_files), load_bundle(weak_files)
    assert decision["action"] == "promote"
    assert decision["candidate"]["metrics"]["f1"] > decision["production"]["metrics"]["f1"]
    assert decision["data"]["sha256"] == (
        "29c6d4dbdb785e7cedb7cef64eb9ee24961d77a7af2ee8e31af42a8aa8124554"
    )
    pointer = s3_store.current_pointer().pointer
    assert pointer is not None
    assert pointer.version == strong.version
    assert pointer.previous_version == weak.version
    assert pointer.manifest_sha256 == strong.manifest_sha256
    assert [h.version for h in read_history(s3_store)] == [weak.version, strong.version]
    assert json.loads((report / "report.json").read_text())["promoted"] is True
    markdown = (report / "report.md").read_text()
    assert "| F1 |" in markdown
    assert "Confusion matrix" in markdown
    assert "sha256" in markdown
    assert (report / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worse_candidate_is_kept_out_with_exit_3(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"))
    before = snapshot(s3_store)
    capsys.readouterr()
    assert promote(s3_store, bundle_dir(tmp_path, weak_files, "weak")) == EXIT_KEPT
    decision = json.loads(capsys.readouterr().out)
    assert decision["action"] == "keep"
    assert decision["promoted"] is False
    assert snapshot(s3_store) == before


def test_equal_candidate_is_kept(
    tmp_path: Path, s3_store: S3Store, strong_files: dict[str, bytes]
) -> None:
    candidate = bundle_dir(tmp_path, strong_files, "strong")
    promote(s3_store, candidate)
    before = snapshot(s3_store)
    assert promote(s3_store, candidate) == EXIT_KEPT
    assert snapshot(s3_store) == before


def test_min_delta_and_force(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    strong = bundle_dir(tmp_path, strong_files, "strong")
    assert promote(s3_store, strong, "--min-delta", "0.9") == EXIT_KEPT  # not that much better
    promote(s3_store, strong)
    capsys.readouterr()
    assert promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"), "--force") == EXIT_OK
    assert json.loads(capsys.readouterr().out)["action"] == "force-promote"
    assert read_history(s3_store)[-1].action == "force-promote"


def test_dry_run_changes_nothing(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    before = snapshot(s3_store)
    capsys.readouterr()
    assert promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"), "--dry-run") == 0
    out, err = capsys.readouterr()
    assert "DRY RUN: would promote" in err
    assert json.loads(out)["promoted"] is False
    assert snapshot(s3_store) == before


def test_negative_min_delta_is_recorded_as_deliberate(
    dev_dataset: Dataset, weak_files: dict[str, bytes], strong_files: dict[str, bytes]
) -> None:
    weak = evaluate_bundle(load_bundle(weak_files), dev_dataset)
    strong = evaluate_bundle(load_bundle(strong_files), dev_dataset)
    go, action, reason = decide(weak, strong, min_delta=-1.0, force=False)
    assert go
    assert action == "force-promote"
    assert "deliberately" in reason
    assert decide(weak, strong, min_delta=0.0, force=False)[:2] == (False, "keep")


def test_two_promotions_racing_from_two_processes_exactly_one_wins(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    dev_dataset: Dataset,
) -> None:
    """Both processes read production.json, then block on their evaluation data (a named
    pipe) until we feed it: they decide against the same ETag, for real, in parallel."""
    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    other = train_bundle(dev_dataset, seed=4)
    candidates = [bundle_dir(tmp_path, strong_files, "a"), bundle_dir(tmp_path, other, "b")]
    data = DEV_DATA.read_bytes()
    procs = []
    for i, candidate in enumerate(candidates):
        fifo = tmp_path / f"data-{i}.csv"
        os.mkfifo(fifo)
        procs.append(
            (
                fifo,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "ml.cli",
                        "promote",
                        "--candidate",
                        str(candidate),
                        "--data",
                        str(fifo),
                        "--store",
                        f"s3://{s3_store.bucket}/fraud",
                    ],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
            )
        )
    writers = []
    for fifo, _ in procs:  # opening blocks until that process reads: its ETag is in hand
        writers.append(open(fifo, "wb"))  # noqa: SIM115 - closed below, once both are open
    for writer in writers:
        writer.write(data)
        writer.close()
    results = [
        (p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for _, p in procs
    ]
    for _, p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    codes = sorted(code for code, _ in results)
    assert codes == [EXIT_OK, EXIT_ERROR], results
    loser = next(err for code, err in results if code == EXIT_ERROR)
    assert "production changed while this promotion was deciding" in loser
    assert "nothing was promoted" in loser
    history = read_history(s3_store)
    assert len(history) == 2  # the first promotion and exactly one winner


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
    assert [e["action"] for e in history["log"]] == ["promote", "promote", "rollback", "rollback"]
    assert all(e["promoted_by"] for e in history["log"])
    assert main(["history", "--store", uri]) == EXIT_OK
    table = capsys.readouterr().out
    assert f"* {strong}" in table
    assert "rollback" in table
    assert main(["rollback", "--store", uri, "--to", "v-nope"]) == EXIT_ERROR


def test_evaluate_from_dir_and_store(
    tmp_path: Path,
    s3_store: S3Store,
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = bundle_dir(tmp_path, strong_files, "strong")
    assert main(["evaluate", "--bundle", str(candidate), "--data", str(DEV_DATA), "--json"]) == 0
    from_dir = json.loads(capsys.readouterr().out)
    promote(s3_store, candidate)
    capsys.readouterr()
    uri = f"s3://{s3_store.bucket}/fraud"
    assert main(["evaluate", "--store", uri, "--data", str(DEV_DATA), "--json"]) == 0
    from_store = json.loads(capsys.readouterr().out)
    assert from_dir["metrics"] == from_store["metrics"]
    assert from_store["metrics"]["rows"] == 15_440
    assert main(["evaluate", "--store", uri, "--data", str(DEV_DATA)]) == 0
    assert "f1_at_production_prevalence" in capsys.readouterr().out


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
        "missing-candidate": ([str(tmp_path / "nope"), str(DEV_DATA)], "does not exist"),
        "unreadable-bundle": ([str(unreadable), str(DEV_DATA)], "has no manifest.json"),
        "tampered-bundle": ([str(tampered), str(DEV_DATA)], "model.joblib has sha256"),
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
            str(DEV_DATA),
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
    from tests.server import PREDICT_BODY, ServiceProcess, once
    from tests.service.conftest import ADMIN_KEY, API_KEY, AUTH

    promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"))
    server = ServiceProcess(
        tmp_path,
        {
            "FRAUD_STORE_URI": f"s3://{s3_store.bucket}/fraud",
            "FRAUD_API_KEYS": API_KEY,
            "FRAUD_ADMIN_API_KEYS": ADMIN_KEY,
            "FRAUD_MODEL_POLL_INTERVAL_S": "0",
        },
    ).start()
    try:
        server.wait_ready()
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
    finally:
        server.stop()
