"""Split a labelled CSV once into training rows and evaluation rows, byte for byte.

Stratified by label, and by transaction: exact copies of a row (the public data has some) all
go to the same side, so no evaluation row has a copy among the training rows. The lines are
copied unchanged, so each file is in the original format and its rows are original rows.
`fraudctl split-data` runs it; data/README.md records how the committed files were made.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.data import load_dataset, read_bytes


@dataclass(frozen=True)
class SplitFiles:
    train: bytes
    evaluation: bytes
    train_rows: int
    evaluation_rows: int
    train_frauds: int
    evaluation_frauds: int


def split_sample(path: Path, *, eval_fraction: float, seed: int) -> SplitFiles:
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    dataset = load_dataset(path)  # validates every line first
    lines = read_bytes(path).rstrip(b"\r\n").split(b"\n")
    header, rows = lines[0], lines[1:]
    if len(rows) != dataset.n_rows:
        raise ValueError(f"{path}: {len(rows)} lines but {dataset.n_rows} rows parsed")
    # One group per distinct transaction (features and label), in order of first appearance.
    _, group, counts = np.unique(
        np.column_stack([dataset.X, dataset.y]), axis=0, return_inverse=True, return_counts=True
    )
    group = group.ravel()
    group_label = np.zeros(counts.size, dtype=np.int8)
    group_label[group] = dataset.y
    rng = np.random.default_rng(seed)
    to_eval = np.zeros(counts.size, dtype=bool)
    for label in (0, 1):
        members = np.flatnonzero(group_label == label)
        n_eval = round(members.size * eval_fraction)
        to_eval[rng.choice(members, size=n_eval, replace=False)] = True
    row_to_eval = to_eval[group]
    train = [header, *(r for r, e in zip(rows, row_to_eval, strict=True) if not e)]
    evaluation = [header, *(r for r, e in zip(rows, row_to_eval, strict=True) if e)]
    return SplitFiles(
        train=b"\n".join(train) + b"\n",
        evaluation=b"\n".join(evaluation) + b"\n",
        train_rows=int((~row_to_eval).sum()),
        evaluation_rows=int(row_to_eval.sum()),
        train_frauds=int(dataset.y[~row_to_eval].sum()),
        evaluation_frauds=int(dataset.y[row_to_eval].sum()),
    )


def write_gzip(path: Path, data: bytes) -> None:
    """Deterministic gzip (no name, no timestamp): the same rows give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
