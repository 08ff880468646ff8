"""fraudctl promote's decisions, through the CLI, against moto-server S3 and the real data
sample: what is promoted, what is kept, and two promotions racing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.data import Dataset
from ml.promote import decide, evaluate_bundle
from ml.runtime.bundle import load_bundle
from ml.runtime.history import read_history
from ml.runtime.s3_store import S3Store
from ml.testing.processes import EVAL_DATA, REPO
from ml.train import train_bundle
from tests.support.promotion import (
    EXIT_ERROR,
    EXIT_KEPT,
    EXIT_OK,
    bundle_dir,
    live_version,
    promote,
    snapshot,
)


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
        "725b96c9500d242976bae372e8d180ee138ec8afb2cb2bba1ce0ad64cc71d137"  # the evaluation file
    )
    assert decision["prevalence"] == 0.00172
    assert [o["rows"] for o in decision["overlap"]] == [0, 0]  # neither trained on these rows
    pointer = s3_store.current_pointer().pointer
    assert pointer is not None
    assert pointer.version == strong.version
    assert pointer.previous_version == weak.version
    assert pointer.manifest_sha256 == strong.manifest_sha256
    assert [h.version for h in read_history(s3_store).entries] == [strong.version, weak.version]
    # The difference comes with its uncertainty over the same rows, in the reason and history.
    assert "95 % paired bootstrap" in decision["reason"]
    difference = pointer.details["f1_difference"]
    low, high = difference["interval_95"]
    assert low <= difference["difference"] <= high
    assert difference["difference"] == pytest.approx(
        decision["candidate"]["metrics"]["f1"] - decision["production"]["metrics"]["f1"]
    )
    assert json.loads((report / "report.json").read_text())["promoted"] is True
    markdown = (report / "report.md").read_text()
    assert "| F1 at 0.172% |" in markdown
    assert "| F1 on the sample as it is |" in markdown
    assert "weighted to the configured prevalence, 0.172%" in markdown
    assert "Confusion matrix" in markdown
    assert "sha256" in markdown
    assert (report / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("live", "candidate", "extra", "code", "says"),
    [
        ("strong", "weak", (), EXIT_KEPT, "not better, production kept"),
        ("strong", "strong", (), EXIT_KEPT, "the candidate is already production"),
        ("weak", "strong", ("--min-delta", "0.9"), EXIT_KEPT, "not better, production kept"),
        ("weak", "strong", ("--dry-run",), EXIT_OK, "DRY RUN: would promote"),
    ],
    ids=["worse", "equal", "not-better-by-min-delta", "dry-run"],
)
def test_a_decision_not_to_promote_leaves_the_store_untouched(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
    live: str,
    candidate: str,
    extra: tuple[str, ...],
    code: int,
    says: str,
) -> None:
    files = {"weak": weak_files, "strong": strong_files}
    promote(s3_store, bundle_dir(tmp_path, files[live], "live"))
    before = snapshot(s3_store)
    capsys.readouterr()
    assert promote(s3_store, bundle_dir(tmp_path, files[candidate], "candidate"), *extra) == code
    out, err = capsys.readouterr()
    assert says in err
    assert json.loads(out)["promoted"] is False
    after = snapshot(s3_store)
    new_keys = sorted(set(after) - set(before))
    assert {k: after[k] for k in before} == before  # nothing changed, nothing published
    if "--dry-run" in extra:
        assert new_keys == []
    else:  # a kept production is recorded, with both F1 values, and nothing else is written
        assert [k.split("/")[0] for k in new_keys] == ["history"]
        kept = read_history(s3_store).entries[0]
        assert kept.action == "keep"
        assert kept.details["candidate_f1"] is not None
        assert kept.details["production_f1"] is not None


def test_force_promotes_a_worse_candidate_and_says_so(
    tmp_path: Path,
    s3_store: S3Store,
    weak_files: dict[str, bytes],
    strong_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    promote(s3_store, bundle_dir(tmp_path, strong_files, "strong"))
    capsys.readouterr()
    assert promote(s3_store, bundle_dir(tmp_path, weak_files, "weak"), "--force") == EXIT_OK
    assert json.loads(capsys.readouterr().out)["action"] == "force-promote"
    assert read_history(s3_store).entries[0].action == "force-promote"


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
    data = EVAL_DATA.read_bytes()
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
    history = read_history(s3_store).entries
    assert len(history) == 2  # the first promotion and exactly one winner
