from pathlib import Path

import numpy as np
import pytest

from ml.cli import main
from ml.data import Dataset
from ml.runtime.bundle import Manifest, load_bundle, load_bundle_dir
from ml.runtime.layout import MODEL_FILE
from ml.train import split_dataset, train_bundle
from tests.support.processes import DEV_DATA


@pytest.fixture(scope="module")
def dev_bundle_files(dev_dataset: Dataset) -> dict[str, bytes]:
    return train_bundle(dev_dataset, seed=0)


def test_default_model_reaches_the_quality_bar(dev_bundle_files: dict[str, bytes]) -> None:
    manifest = Manifest.from_json(dev_bundle_files["manifest.json"])
    test = manifest.metrics["test"]
    assert manifest.model_family == "hgb"
    assert test["f1"] >= 0.88
    assert test["pr_auc"] >= 0.90
    assert test["prevalence"] == pytest.approx(344 / 15_440, abs=0.002)
    # Re-weighting to 0.172 % prevalence can only add weight to false positives.
    assert test["precision_at_production_prevalence"] <= test["precision"]


def test_training_is_deterministic_for_a_seed(
    dev_dataset: Dataset, dev_bundle_files: dict[str, bytes]
) -> None:
    again = train_bundle(dev_dataset, seed=0)
    assert again[MODEL_FILE] == dev_bundle_files[MODEL_FILE]
    assert again["preprocessor.joblib"] == dev_bundle_files["preprocessor.joblib"]
    first, second = (Manifest.from_json(f["manifest.json"]) for f in (dev_bundle_files, again))
    assert first.metrics == second.metrics
    assert first.threshold == second.threshold


def test_threshold_is_chosen_on_validation_not_test(dev_dataset: Dataset) -> None:
    from ml.evaluate import best_f1_threshold

    files = train_bundle(dev_dataset, seed=3)
    bundle = load_bundle(files)
    split = split_dataset(dev_dataset, 3)
    val_scores = bundle.score(split.X_val)
    assert bundle.threshold == best_f1_threshold(split.y_val, val_scores)


def test_splits_are_disjoint_and_stratified(dev_dataset: Dataset) -> None:
    split = split_dataset(dev_dataset, 0)
    sizes = [split.y_train.size, split.y_val.size, split.y_test.size]
    assert sum(sizes) == dev_dataset.n_rows - 57  # exact duplicates are dropped first
    for y in (split.y_train, split.y_val, split.y_test):
        assert y.mean() == pytest.approx(dev_dataset.prevalence, abs=0.002)
    rows = {tuple(r) for r in np.vstack([split.X_train, split.X_val])}
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
    assert "f1_at_production_prevalence" in out  # the summary table
    assert "threshold" in err
    assert "fitting hgb" in err


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
