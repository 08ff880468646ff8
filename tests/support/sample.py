"""The committed data sample as feature rows: for checks that examples are real rows."""

from __future__ import annotations

import numpy as np

from ml.data import load_dataset
from ml.testing.processes import DEV_DATA, EVAL_DATA


def committed_rows() -> np.ndarray:
    """Every row of the committed training and evaluation files, Time, V1..V28, Amount."""
    return np.vstack([load_dataset(path).X for path in (DEV_DATA, EVAL_DATA)])
