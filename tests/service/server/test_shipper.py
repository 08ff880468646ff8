"""The shipper in-process over a local store: ready files become Parquet and are deleted,
open ones wait; a file shipped twice is there once; a torn tail is counted; past its limit the
spool drops its oldest files; at exit it ships open files too and counts what it could not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ml.captures import read_captures
from ml.runtime.capture_records import RECORD_BYTES, encode_one
from ml.runtime.local_store import LocalStore
from service.observe.capture_metrics import CaptureMetrics
from service.server.shipper import Shipper

AT = 1_764_781_200.0


def records(*ids: str) -> bytes:
    return b"".join(encode_one(AT, "r", i, "v1", "k1", [0.0] * 30, 0.1, 0.5, False) for i in ids)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.root.mkdir()
    return store


@pytest.fixture
def metrics() -> CaptureMetrics:
    from prometheus_client import CollectorRegistry

    return CaptureMetrics(CollectorRegistry())


def shipper(spool: Path, store: LocalStore, metrics: CaptureMetrics, limit: int = 10**9) -> Shipper:
    return Shipper(spool, store, metrics, task="t1", max_spool_bytes=limit)


def value(metric: Any, **labels: str) -> float:
    child = metric.labels(**labels) if labels else metric
    return float(child._value.get())


def ids_in(store: LocalStore) -> list[str]:
    return sorted(read_captures(store).column("transaction_id").to_pylist())


def test_ready_files_are_shipped_and_deleted_open_ones_wait(
    spool: Path, store: LocalStore, metrics: CaptureMetrics
) -> None:
    (spool / "7_1-00000000.ready").write_bytes(records("a", "b"))
    (spool / "7_1-00000001.open").write_bytes(records("c"))
    shipper(spool, store, metrics).cycle()
    assert ids_in(store) == ["a", "b"]
    assert store.list_keys("captures/") == [
        "captures/date=2025-12-03/hour=17/t1-7_1-00000000.parquet"
    ]
    assert [p.name for p in spool.iterdir()] == ["7_1-00000001.open"]
    assert value(metrics.shipped) == 2
    assert value(metrics.spooled) == 1


def test_a_file_shipped_again_is_there_once(
    spool: Path, store: LocalStore, metrics: CaptureMetrics
) -> None:
    data = records("a", "b")
    (spool / "7_1-00000000.ready").write_bytes(data)
    shipper(spool, store, metrics).cycle()
    (spool / "7_1-00000000.ready").write_bytes(data)  # stopped after the upload, before unlink
    shipper(spool, store, metrics).cycle()
    assert ids_in(store) == ["a", "b"]


def test_a_torn_tail_is_counted(spool: Path, store: LocalStore, metrics: CaptureMetrics) -> None:
    (spool / "7_1-00000000.ready").write_bytes(records("a") + records("b")[:50])
    shipper(spool, store, metrics).cycle()
    assert ids_in(store) == ["a"]
    assert value(metrics.dropped, reason="torn") == 1


def test_a_full_spool_drops_its_oldest_files(
    spool: Path, store: LocalStore, metrics: CaptureMetrics
) -> None:
    (store.root / "captures").write_text("the store refuses captured files")
    for seq, name in enumerate(["old", "mid", "new"]):
        path = spool / f"7_1-{seq:08d}.ready"
        path.write_bytes(records(f"{name}1", f"{name}2"))
        os.utime(path, (AT + seq, AT + seq))
    shipper(spool, store, metrics, limit=4 * RECORD_BYTES).cycle()
    assert value(metrics.dropped, reason="spool_full") == 2
    assert sorted(p.name for p in spool.iterdir()) == ["7_1-00000001.ready", "7_1-00000002.ready"]
    (store.root / "captures").unlink()
    shipper(spool, store, metrics, limit=4 * RECORD_BYTES).cycle()
    assert ids_in(store) == ["mid1", "mid2", "new1", "new2"]


def test_at_exit_open_files_ship_and_what_cannot_is_counted(
    spool: Path, store: LocalStore, metrics: CaptureMetrics
) -> None:
    (spool / "7_1-00000000.open").write_bytes(records("a"))
    assert shipper(spool, store, metrics).drain(timeout_s=1) == 0
    assert ids_in(store) == ["a"]
    (spool / "8_1-00000000.open").write_bytes(records("b", "c"))
    (store.root / "captures").rename(store.root / "elsewhere")
    (store.root / "captures").write_text("down")
    assert shipper(spool, store, metrics).drain(timeout_s=0.3) == 2
    assert value(metrics.dropped, reason="unshipped_at_exit") == 2
