"""The decision log in the store: Parquet files under Hive-style partitions.

    captures/date=2026-12-03/hour=17/<task>-<worker>-<seq>.parquet

Athena, Spark, Dask, DuckDB and `pyarrow.dataset(..., partitioning="hive")` read the prefix as it
is, with `date` and `hour` as columns. One spool file of one worker makes one file per hour it
spans, named after it: shipping the same spool file again writes the same keys, so a shipper
that stopped between the upload and the delete duplicates nothing.

pyarrow is imported by the functions that need it: a worker imports this module's names never,
and the shipper pays for pyarrow (~37 MB) in its own process.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import numpy as np

from ml.runtime.capture_records import N_INPUTS
from ml.runtime.schema import FEATURE_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

CAPTURES_PREFIX: Final = "captures/"
DICTIONARY_COLUMNS: Final = ["request_id", "model_version", "api_key_id"]
_NAME_PART = re.compile(r"[^A-Za-z0-9._]+")
assert len(FEATURE_NAMES) == N_INPUTS


def safe_name_part(text: str) -> str:
    """A task or worker name as a key component: no '/', '=', '-' or spaces."""
    return _NAME_PART.sub("_", text).strip("_")[:64] or "unknown"


def capture_key(received_at: float, task: str, worker: str, seq: int) -> str:
    moment = datetime.fromtimestamp(received_at, UTC)
    return (
        f"{CAPTURES_PREFIX}date={moment:%Y-%m-%d}/hour={moment:%H}/"
        f"{safe_name_part(task)}-{safe_name_part(worker)}-{seq:08d}.parquet"
    )


def capture_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("transaction_id", pa.string()),
            ("received_at", pa.timestamp("ms", tz="UTC")),
            ("model_version", pa.string()),
            *[(name, pa.float64()) for name in FEATURE_NAMES],
            ("fraud_probability", pa.float64()),
            ("threshold", pa.float64()),
            ("is_fraud", pa.bool_()),
            ("api_key_id", pa.string()),
        ]
    )


def records_to_table(records: np.ndarray) -> pa.Table:
    """Spool records (`ml.runtime.capture_records.RECORD`) as a table of the capture schema;
    a row without a transaction id gets its key, `<request_id>:<row>`, here.

    The shipper's main cost, so the strings are made by Arrow from the records' fixed-width
    bytes: numpy's decoding took 95 ms for a 15,000-row spool file, this 33 ms."""
    import pyarrow as pa
    import pyarrow.compute as pc

    request_ids = _text(records["request_id"])
    keys = _text(records["transaction_id"])
    unnamed = pc.equal(keys, "")
    if pc.any(unnamed).as_py():
        rows = pa.array(records["row"]).cast(pa.string())
        keys = pc.if_else(unnamed, pc.binary_join_element_wise(request_ids, rows, ":"), keys)
    inputs = records["inputs"]
    columns: dict[str, object] = {
        "request_id": request_ids,
        "transaction_id": keys,
        "received_at": (records["received_at"] * 1000).astype("datetime64[ms]"),
        "model_version": _text(records["model_version"]),
        **{name: np.ascontiguousarray(inputs[:, i]) for i, name in enumerate(FEATURE_NAMES)},
        "fraud_probability": records["fraud_probability"],
        "threshold": records["threshold"],
        "is_fraud": records["is_fraud"].astype(bool),
        "api_key_id": _text(records["api_key_id"]),
    }
    return pa.table(columns, schema=capture_schema())


def _text(column: np.ndarray) -> pa.Array:
    """A fixed-width ASCII bytes column (NUL-padded, as numpy's `S` types) as strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    width = column.dtype.itemsize
    data = pa.py_buffer(np.ascontiguousarray(column).tobytes())
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(column), [None, data])
    return pc.utf8_rtrim(fixed.cast(pa.binary()).cast(pa.string()), characters="\x00")


def hours_of(records: np.ndarray) -> list[np.ndarray]:
    """The records split by the hour they arrived in (a spool file can span two)."""
    hours = np.floor(records["received_at"] / 3600.0)
    return [records[hours == hour] for hour in np.unique(hours)]


def read_parquet(data: bytes) -> pa.Table:
    """One file's table, read on the calling thread. pyarrow's default reader runs on its
    thread pools, and a process that exits while one is still winding down aborts
    ('terminate called without an active exception', apache/arrow#34314): 23 of 40 short
    processes here did; none with this."""
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data), use_threads=False, pre_buffer=False)


def parquet_bytes(table: pa.Table, dictionary: list[str] | bool = DICTIONARY_COLUMNS) -> bytes:
    """One zstd Parquet file's bytes; `dictionary` names the columns dictionary-encoded (all
    when True)."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    # Captured rows: dictionaries for the strings only. The 30 inputs are high-entropy floats,
    # and trying a dictionary on each cost 30 of the 42 ms a 15,000-row file took (and 297
    # bytes a row against 242). zstd: smaller than snappy (260) for the same time.
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary)
    return sink.getvalue()
