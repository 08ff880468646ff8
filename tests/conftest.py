"""Shared fixtures: the real data sample, a real S3 endpoint (moto in server mode on 127.0.0.1),
and bundles trained for real."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from ml.data import Dataset, load_dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_store import S3Store
from ml.runtime.store import ArtifactStore
from ml.testing.bundles import promote_files, signing_environment
from ml.testing.processes import AWS_ENV, DEV_DATA, start_moto, stop_process
from ml.testing.server import ServiceProcess, server_env, serving
from ml.train import train_bundle


@pytest.fixture(scope="session", autouse=True)
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One Ed25519 pair for the session, in the environment as a deployment has it: promotions
    (in-process and in subprocesses) sign with it, services trust it."""
    values = signing_environment(tmp_path_factory.mktemp("keys"))
    # Not the developer's `make run` setup (.local/): a test names every store and key it uses.
    values["FRAUD_LOCAL_DIR"] = str(tmp_path_factory.mktemp("no-local") / "absent")
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1: real HTTP, real boto3, nothing mocked in-process."""
    proc, endpoint = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        saved = {k: os.environ.get(k) for k in (*AWS_ENV, "AWS_ENDPOINT_URL_S3")}
        os.environ.update(AWS_ENV | {"AWS_ENDPOINT_URL_S3": endpoint})
        yield endpoint
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        stop_process(proc)


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_bucket: str) -> S3Store:
    return S3Store(s3_bucket, "fraud")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store test runs against both backends."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, "fraud")


@pytest.fixture(scope="session")
def dev_dataset() -> Dataset:
    return load_dataset(DEV_DATA)


@pytest.fixture(scope="session")
def small_dataset(dev_dataset: Dataset) -> Dataset:
    """A stratified quarter of the real sample: enough to train a tiny model in well under 1 s."""
    rng = np.random.default_rng(7)
    fraud = np.flatnonzero(dev_dataset.y == 1)
    legit = rng.choice(np.flatnonzero(dev_dataset.y == 0), size=3000, replace=False)
    rows = np.sort(np.concatenate([fraud, legit]))
    return Dataset(
        path=dev_dataset.path, X=dev_dataset.X[rows], y=dev_dataset.y[rows], sha256="subset"
    )


@pytest.fixture(scope="session")
def bundle_files(small_dataset: Dataset) -> dict[str, bytes]:
    """A real (small) HGB bundle, trained once per session."""
    return train_bundle(small_dataset, model_name="hgb", seed=1)


@pytest.fixture(scope="session")
def other_bundle_files(small_dataset: Dataset) -> dict[str, bytes]:
    """A second, different bundle (linear baseline), for swaps and comparisons."""
    return train_bundle(small_dataset, model_name="logreg", seed=2)


@pytest.fixture(scope="session")
def strong_files(dev_dataset: Dataset) -> dict[str, bytes]:
    """HGB on the whole committed training sample: the stronger model, and the one whose
    reference distributions are those of the committed rows."""
    return train_bundle(dev_dataset, seed=0)


@pytest.fixture(scope="session")
def bundle_version(bundle_files: dict[str, bytes]) -> str:
    return load_bundle(bundle_files).version


@pytest.fixture
def served_files(bundle_files: dict[str, bytes]) -> dict[str, bytes]:
    """The bundle `service` serves; a test module overrides this fixture to serve another."""
    return bundle_files


@pytest.fixture
def service(
    tmp_path: Path, s3_store: S3Store, served_files: dict[str, bytes]
) -> Iterator[ServiceProcess]:
    """A real `fraudctl serve` (2 workers) on moto S3, serving `served_files` as promoted."""
    promote_files(s3_store, served_files)
    with serving(tmp_path, server_env(s3_store)) as server:
        yield server
