"""Fixtures for the promotion tests: a strong and a weak candidate, trained for real."""

from __future__ import annotations

import pytest

from ml.data import Dataset
from ml.train import train_bundle


@pytest.fixture(scope="session")
def strong_files(dev_dataset: Dataset) -> dict[str, bytes]:
    """HGB on the whole sample: the stronger model on the sample."""
    return train_bundle(dev_dataset, seed=0)


@pytest.fixture(scope="session")
def weak_files(small_dataset: Dataset) -> dict[str, bytes]:
    """A linear model on a quarter of the sample: clearly weaker."""
    return train_bundle(small_dataset, model_name="logreg", seed=2)
