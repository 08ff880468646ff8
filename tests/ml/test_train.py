from pathlib import Path

import numpy as np
import pytest

from ml.cli import main
from ml.data import Dataset
from ml.evaluate import Objective, choose_threshold
from ml.fingerprint import overlapping_rows
from ml.runtime.bundle import load_bundle, load_bundle_dir
from ml.runtime.layout import MODEL_FILE
from ml.runtime.manifest import Manifest
from ml.testing.processes import DEV_DATA
from ml.train import out_of_fold_scores, split_dataset, train_bundle


@pytest.fixture(scope="module")
def dev_bundle_files(dev_dataset: Dataset) -> dict[str, bytes]:
    return train_bundle(dev_dataset, seed=0)


def test_default_model_reaches_the_quality_bar(dev_bundle_files: dict[str, bytes]) -> None:
    manifest = Manifest.from_json(dev_bundle_files["manifest.json"])
    test = manifest.metrics["test"]
    assert manifest.model_family == "hgb"
    assert manifest.prevalence == test["prevalence"] == 0.00172
    assert test["f1"] >= 0.70  # at production prevalence, on the 50 frauds of the test split
    assert test["pr_auc"] >= 0.70
    assert test["sample_f1"] >= 0.85
    assert test["sample_prevalence"] == pytest.approx(260 / 11_579, abs=0.002)
    # Weighting legit rows up to 0.172 % can only add weight to false positives.
    assert test["precision"] <= test["sample_precision"]
    assert test["recall"] == pytest.approx(test["confusion_matrix"]["tp"] / test["frauds"])


def test_training_is_deterministic_for_a_seed(
    dev_dataset: Dataset, dev_bundle_files: dict[str, bytes]
) -> None:
    again = train_bundle(dev_dataset, seed=0)
    assert again[MODEL_FILE] == dev_bundle_files[MODEL_FILE]
    assert again["preprocessor.joblib"] == dev_bundle_files["preprocessor.joblib"]
    first, second = (Manifest.from_json(f["manifest.json"]) for f in (dev_bundle_files, again))
    assert first.metrics == second.metrics
    assert first.threshold == second.threshold


def test_threshold_is_chosen_out_of_fold_at_the_prevalence_not_on_test(
    small_dataset: Dataset,
) -> None:
    files = train_bundle(small_dataset, seed=3)
    bundle = load_bundle(files)
    split = split_dataset(small_dataset, 3)
    oof = out_of_fold_scores("hgb", 3, split.X_train, split.y_train)
    expected = choose_threshold(split.y_train, oof, 0.00172, Objective.parse("f1"))
    assert bundle.threshold == expected
    assert bundle.manifest.metrics["validation"]["rows"] == split.y_train.size
    # The rows trained on are fingerprinted; the test rows are not among them.
    assert bundle.manifest.training_rows is not None
    assert overlapping_rows(split.X_train, bundle.manifest.training_rows) == split.y_train.size
    assert overlapping_rows(split.X_test, bundle.manifest.training_rows) == 0


def test_a_rarer_fraud_rate_asks_for_more_certainty(small_dataset: Dataset) -> None:
    """At production's 0.172 % each false positive weighs ~13x what it does at 2.2 %: the
    threshold chosen for it is at least as high, and flags no more test rows."""
    rare = load_bundle(train_bundle(small_dataset, seed=1, prevalence=0.00172))
    common = load_bundle(train_bundle(small_dataset, seed=1, prevalence=0.0223))
    assert rare.threshold >= common.threshold
    assert rare.manifest.prevalence == 0.00172
    rare, common = (b.manifest.metrics["test"] for b in (rare, common))
    flagged = [m["confusion_matrix"]["tp"] + m["confusion_matrix"]["fp"] for m in (rare, common)]
    assert flagged[0] <= flagged[1]


def test_a_precision_objective_reaches_its_precision_out_of_fold(small_dataset: Dataset) -> None:
    bundle = load_bundle(train_bundle(small_dataset, seed=1, objective="precision=0.8"))
    assert bundle.manifest.params["threshold_objective"] == "precision=0.8"
    assert bundle.manifest.metrics["validation"]["precision"] >= 0.8
    with pytest.raises(ValueError, match="objective must be"):
        train_bundle(small_dataset, objective="recall")


def test_splits_are_disjoint_and_stratified(dev_dataset: Dataset) -> None:
    split = split_dataset(dev_dataset, 0)
    n_duplicates = dev_dataset.n_rows - np.unique(dev_dataset.X, axis=0).shape[0]
    assert split.y_train.size + split.y_test.size == dev_dataset.n_rows - n_duplicates
    for y in (split.y_train, split.y_test):
        assert y.mean() == pytest.approx(dev_dataset.prevalence, abs=0.002)
    rows = {tuple(r) for r in split.X_train}
    assert not any(tuple(r) in rows for r in split.X_test)


def test_unknown_model_is_refused(small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown model 'xgb'"):
        train_bundle(small_dataset, model_name="xgb")


def test_cli_train_writes_a_loadable_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(DEV_DATA), "--out", str(tmp_path / "b")]) == 0
    out, err = capsys.readouterr()
    bundle = load_bundle_dir(tmp_path / "b")
    assert f"version {bundle.version}" in out
    assert "metrics at prevalence 0.00172 first" in out  # the summary table
    assert "sample_f1" in out
    assert "threshold" in err
    assert "5-fold cross-validation of hgb" in err
    assert "fold 5/5 scored" in err  # progress while it fits


def test_cli_train_reports_bad_data_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "b")]) == 1
    assert "bad.csv: the file is empty" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_cli_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["train", "--data"])
    assert caught.value.code == 2
