"""Fixtures for the promotion tests: a weak candidate, trained for real (the strong one,
`strong_files`, is shared from tests/conftest.py)."""

from __future__ import annotations

import pytest

from ml.data import Dataset
from ml.train import train_bundle


@pytest.fixture(scope="session")
def weak_files(small_dataset: Dataset) -> dict[str, bytes]:
    """A linear model on a quarter of the sample: clearly weaker."""
    return train_bundle(small_dataset, model_name="logreg", seed=2)
