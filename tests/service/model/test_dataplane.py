"""`DataPlane` built in-process over a real registry and local store, no HTTP: scoring one row
and many against the threshold, the batch limits, reasons, drift while collecting, the
promotion log with a bad record in it, and reload."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from ml.runtime.bundle import load_bundle
from ml.runtime.history import record_history
from ml.runtime.layout import HISTORY_PREFIX
from ml.runtime.local_store import LocalStore
from ml.runtime.signing import TrustedKeys
from ml.testing.bundles import promote_files
from service.errors import InvalidInput, TooLarge
from service.model.dataplane import DataPlane
from service.model.registry import ModelRegistry
from service.observe.metrics import Metrics

MAX_ROWS = 8


@asynccontextmanager
async def data_plane(store: LocalStore) -> AsyncIterator[DataPlane]:
    metrics = Metrics()
    registry = ModelRegistry(
        store, metrics, TrustedKeys.parse(os.environ["FRAUD_TRUSTED_KEYS"]), poll_interval_s=0
    )
    registry.start()
    try:
        assert await registry.wait_first_load(10)
        yield DataPlane(registry, metrics, max_batch_rows=MAX_ROWS)
    finally:
        await registry.stop()


@pytest.fixture
def store(tmp_path: Path, bundle_files: dict[str, bytes]) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    promote_files(store, bundle_files)
    return store


def rows(n: int) -> np.ndarray:
    return np.random.default_rng(5).normal(size=(n, 30))


def test_one_row_and_a_batch_score_as_the_bundle_does(
    store: LocalStore, bundle_files: dict[str, bytes]
) -> None:
    bundle = load_bundle(bundle_files)
    matrix = rows(5)

    async def scenario() -> None:
        async with data_plane(store) as plane:
            one = await plane.predict(matrix[0].tolist())
            assert one.fraud_probability == bundle.score(matrix[:1])[0]
            assert one.threshold == bundle.threshold
            assert one.is_fraud == (one.fraud_probability >= bundle.threshold)
            batch = await plane.predict_batch(matrix, threshold=0.5)
            assert batch.fraud_probabilities == bundle.score(matrix).tolist()
            assert batch.is_fraud == [p >= 0.5 for p in batch.fraud_probabilities]
            assert batch.model_version == bundle.version

    asyncio.run(scenario())


def test_batch_limits_are_refused_before_scoring(store: LocalStore) -> None:
    async def scenario() -> None:
        async with data_plane(store) as plane:
            with pytest.raises(InvalidInput, match="transactions is empty"):
                await plane.predict_batch(rows(0))
            with pytest.raises(TooLarge, match=f"FRAUD_MAX_BATCH_ROWS={MAX_ROWS}"):
                await plane.predict_batch(rows(MAX_ROWS + 1))

    asyncio.run(scenario())


def test_reasons_add_up_to_each_rows_log_odds(store: LocalStore) -> None:
    async def scenario() -> None:
        async with data_plane(store) as plane:
            batch = await plane.predict_batch(rows(3), explain=30)
            assert batch.reasons is not None
            assert batch.base_value is not None
            for probability, reasons in zip(batch.fraud_probabilities, batch.reasons, strict=True):
                log_odds = batch.base_value + sum(r["contribution"] for r in reasons)
                assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(probability, abs=1e-6)

    asyncio.run(scenario())


def test_drift_says_collecting_until_enough_rows(store: LocalStore) -> None:
    async def scenario() -> None:
        async with data_plane(store) as plane:
            await plane.predict_batch(rows(3))
            report = plane.drift_report()
            assert report["status"] == "collecting"
            assert report["live_rows"] == 3
            assert set(report["psi"].values()) == {None}

    asyncio.run(scenario())


def test_the_promotion_log_counts_a_bad_record_and_shows_the_rest(store: LocalStore) -> None:
    pointer = store.current_pointer().pointer
    assert pointer is not None
    store.put_if_absent(f"{HISTORY_PREFIX}99999999T000000Z-junk.json", b"[not a record")
    record_history(store, pointer)

    async def scenario() -> None:
        async with data_plane(store) as plane:
            log = await plane.promotion_history()
            assert log["unreadable"] == 1
            assert [e["version"] for e in log["entries"]] == [pointer.version]

    asyncio.run(scenario())


def test_reload_follows_a_new_promotion(
    store: LocalStore, other_bundle_files: dict[str, bytes]
) -> None:
    async def scenario() -> None:
        async with data_plane(store) as plane:
            before = plane.model_card()["version"]
            version = promote_files(store, other_bundle_files)
            outcome = await plane.reload()
            assert (outcome.previous_version, outcome.version) == (before, version)
            assert outcome.changed
            assert plane.model_card()["version"] == version

    asyncio.run(scenario())
