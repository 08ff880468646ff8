"""The decision log's spool records and Parquet files: the single-row struct and the batch
dtype write the same bytes, torn tails are found, keys default to `<request_id>:<row>`, and
the files read back as a Hive-partitioned dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from ml.runtime.capture_files import capture_key, hours_of, parquet_bytes, records_to_table
from ml.runtime.capture_records import RECORD_BYTES, decode, encode_many, encode_one
from ml.runtime.schema import FEATURE_NAMES

ROW = [float(i) / 7 for i in range(30)]
AT = 1_764_781_200.25  # 2025-12-03 17:00:00.25 UTC


def one(tid: str | None = "tx-1", at: float = AT) -> bytes:
    return encode_one(at, "req-a", tid, "v1", "k1", ROW, 0.25, 0.5, False)


def test_one_row_and_a_batch_lay_out_the_same_bytes() -> None:
    batch = encode_many(
        AT, "req-a", ["tx-1"], "v1", "k1", np.array([ROW]), np.array([0.25]), 0.5, np.array([False])
    )
    assert one() == batch
    assert len(batch) == RECORD_BYTES


def test_decode_returns_whole_records_and_the_torn_tail() -> None:
    data = one() + one("tx-2") + one()[:100]
    records, torn = decode(data)
    assert torn == 100
    assert records["transaction_id"].tolist() == [b"tx-1", b"tx-2"]
    assert records["inputs"][0].tolist() == ROW


def test_a_sample_keeps_the_rows_named_and_their_places() -> None:
    inputs = np.arange(90, dtype=np.float64).reshape(3, 30)
    data = encode_many(
        AT, "req-b", None, "v1", "k1", inputs, np.array([0.1, 0.2, 0.3]), 0.5,
        np.array([False, False, True]), np.array([0, 2], dtype=np.uint32),
    )  # fmt: skip
    records, _ = decode(data)
    table = records_to_table(records)
    assert table.column("transaction_id").to_pylist() == ["req-b:0", "req-b:2"]
    assert table.column("Amount").to_pylist() == [29.0, 89.0]
    assert table.column("is_fraud").to_pylist() == [False, True]


def test_files_read_back_as_a_hive_partitioned_dataset(tmp_path: Path) -> None:
    records, _ = decode(one("a", AT) + one("b", AT + 3600) + one(None, AT + 3601))
    for part in hours_of(records):
        key = capture_key(float(part["received_at"][0]), "task/1", "w-7", 3)
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(parquet_bytes(records_to_table(part)))
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet")) == [
        "captures/date=2025-12-03/hour=17/task_1-w_7-00000003.parquet",
        "captures/date=2025-12-03/hour=18/task_1-w_7-00000003.parquet",
    ]
    table = ds.dataset(tmp_path / "captures", partitioning="hive").to_table()
    rows = sorted(zip(table["hour"].to_pylist(), table["transaction_id"].to_pylist(), strict=True))
    assert rows == [(17, "a"), (18, "b"), (18, "req-a:0")]
    assert set(FEATURE_NAMES) <= set(table.column_names)
    assert table["received_at"].type.tz == "UTC"
