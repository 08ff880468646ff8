"""The committed split of the sample, and the command that made it."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from ml.cli import main
from ml.data import load_dataset
from ml.fingerprint import row_hashes
from ml.testing.processes import DEV_DATA, EVAL_DATA

# sha256 of the original 15,440-row sample's rows, sorted (data/README.md).
SAMPLE_SORTED_ROWS_SHA256 = "ae33b5492a3098a208db8a0fc340ec9bf74ce11ea0cac62406034e885d21814f"


def sorted_rows_sha256(X: np.ndarray, y: np.ndarray) -> str:
    rows = np.column_stack([X, y])
    return hashlib.sha256(rows[np.lexsort(rows.T[::-1])].tobytes()).hexdigest()


def test_the_committed_files_are_the_sample_split_disjoint_and_stratified() -> None:
    train, evaluation = load_dataset(DEV_DATA), load_dataset(EVAL_DATA)
    assert (train.n_rows, train.n_fraud) == (11_579, 260)
    assert (evaluation.n_rows, evaluation.n_fraud) == (3_861, 84)
    assert abs(train.prevalence - evaluation.prevalence) < 0.001
    X = np.vstack([train.X, evaluation.X])
    y = np.concatenate([train.y, evaluation.y])
    assert sorted_rows_sha256(X, y) == SAMPLE_SORTED_ROWS_SHA256
    assert not np.isin(row_hashes(evaluation.X), row_hashes(train.X)).any()


def test_split_data_keeps_lines_and_copies_together(tmp_path: Path) -> None:
    lines = gzip.decompress(DEV_DATA.read_bytes()).split(b"\n")
    # 200 rows, each of the first 20 twice: copies must land on the same side.
    rows = lines[1:181] + lines[1:21]
    rows += [line for line in lines[1:] if line.endswith(b'"1"')][:20]
    source = tmp_path / "sample.csv"
    source.write_bytes(b"\n".join([lines[0], *rows]) + b"\n")
    train, evaluation = tmp_path / "t.csv.gz", tmp_path / "e.csv.gz"
    argv = ["split-data", "--data", str(source), "--train-out", str(train)]
    assert main([*argv, "--eval-out", str(evaluation), "--eval-fraction", "0.25"]) == 0
    train_lines = gzip.decompress(train.read_bytes()).split(b"\n")[1:-1]
    eval_lines = gzip.decompress(evaluation.read_bytes()).split(b"\n")[1:-1]
    assert sorted(train_lines + eval_lines) == sorted(rows)
    assert not set(train_lines) & set(eval_lines)
    assert sum(line.endswith(b'"1"') for line in eval_lines) == 5  # a quarter of the frauds
    first = train.read_bytes()
    assert main([*argv, "--eval-out", str(evaluation), "--eval-fraction", "0.25"]) == 0
    assert train.read_bytes() == first  # deterministic, byte for byte
