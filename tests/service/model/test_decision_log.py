"""A worker's half of the decision log, in-process: rows buffered until a flush (the
housekeeping loop's, every 0.2 s) or 64 KB, files handed over on rotation, a sample rate
honoured, an unwritable spool counted (the answer goes on), and a dead worker's open file
readied by pid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.runtime.capture_records import decode
from service.model.decision_log import DecisionLog, Origin, ready_orphans
from service.observe.metrics import Metrics

ROW = [0.5] * 30
ORIGIN = Origin("req-1", "k1", 1_764_781_200.0, ["tx-1"])
UNNAMED = Origin("req-2", "k1", 1_764_781_200.0)  # a batch whose rows named no id


def spooled(directory: Path, suffix: str) -> np.ndarray:
    data = b"".join(p.read_bytes() for p in sorted(directory.glob(f"*{suffix}")))
    return decode(data)[0]


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    value = 0.0
    for family in metrics.families():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                value += sample.value
    return value


def test_rows_are_in_the_spool_after_a_flush(tmp_path: Path) -> None:
    metrics = Metrics()
    log = DecisionLog(tmp_path, metrics, worker="123_1")
    log.record_one(ORIGIN, "v1", ROW, 0.9, 0.5, True)
    matrix = np.full((3, 30), 2.0)
    log.record_many(UNNAMED, "v1", matrix, np.array([0.1, 0.2, 0.3]), 0.5, np.zeros(3, bool))
    assert not list(tmp_path.iterdir())  # buffered: one write per flush, not per request
    assert counted(metrics, "fraud_capture_captured_rows_total") == 0
    log.flush()
    records = spooled(tmp_path, ".open")
    assert records["transaction_id"].tolist() == [b"tx-1", b"", b"", b""]
    assert records["row"].tolist() == [0, 0, 1, 2]
    assert counted(metrics, "fraud_capture_captured_rows_total") == 4
    log.rotate()
    assert len(spooled(tmp_path, ".ready")) == 4
    assert not list(tmp_path.glob("*.open"))


def test_a_sample_rate_keeps_about_that_share(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, Metrics(), sample_rate=0.25)
    matrix = np.zeros((4000, 30))
    log.record_many(UNNAMED, "v1", matrix, np.zeros(4000), 0.5, np.zeros(4000, bool))
    log.flush()
    kept = len(spooled(tmp_path, ".open"))
    assert 800 < kept < 1200


def test_an_unwritable_spool_is_counted_and_does_not_raise(tmp_path: Path) -> None:
    blocked = tmp_path / "spool"
    blocked.write_text("a file where the directory should be")
    metrics = Metrics()
    log = DecisionLog(blocked, metrics)
    log.record_one(ORIGIN, "v1", ROW, 0.9, 0.5, True)
    log.flush()
    assert counted(metrics, "fraud_capture_dropped_rows_total", reason="write_failed") == 1
    assert counted(metrics, "fraud_capture_captured_rows_total") == 0


def test_files_rotate_at_their_size_limit(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, Metrics(), max_file_bytes=2000)  # under 4 records
    for _ in range(10):
        log.record_one(ORIGIN, "v1", ROW, 0.9, 0.5, True)
        log.flush()
    assert len(list(tmp_path.glob("*.ready"))) == 2
    assert len(spooled(tmp_path, ".ready")) + len(spooled(tmp_path, ".open")) == 10


def test_a_dead_workers_open_file_is_readied_by_its_pid(tmp_path: Path) -> None:
    for worker in ("41_1", "42_1"):
        log = DecisionLog(tmp_path, Metrics(), worker=worker)
        log.record_one(ORIGIN, "v1", ROW, 0.9, 0.5, True)
        log.flush()
    assert ready_orphans(tmp_path, 41) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "41_1-00000000.ready",
        "42_1-00000000.open",
    ]
    assert ready_orphans(tmp_path) == 1  # at start-up: every open file


def test_a_full_buffer_is_written_without_waiting_for_the_flush(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, Metrics())
    matrix = np.zeros((200, 30))  # 108 KB: past FLUSH_BYTES
    log.record_many(UNNAMED, "v1", matrix, np.zeros(200), 0.5, np.zeros(200, bool))
    assert len(spooled(tmp_path, ".open")) == 200
