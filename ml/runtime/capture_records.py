"""The decision log's spool records: one fixed-width record per scored row.

A worker appends records to a local spool file in the request's path, so the layout is built
for writing: one `struct.pack` for a single row (~1 us), one structured numpy array for a batch.
The shipper reads a spool file back with `decode` and writes it to the store as Parquet
(`ml.runtime.capture_files`). Both sides use the layout below; a test holds the struct and the
numpy dtype to the same bytes.

Strings are ASCII by contract: request ids match `[A-Za-z0-9._:-]{1,128}` (the middleware
makes or checks them), transaction ids `[!-~]{1,64}` (the request schema), versions and key ids
are ours. A row without a transaction id stores an empty one; its key, `<request_id>:<row>`, is
made when the file is written (`ml.runtime.capture_files.records_to_table`), not in the
request.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

import numpy as np

from ml.runtime.schema import FEATURE_NAMES

REQUEST_ID_BYTES: Final = 128
TRANSACTION_ID_BYTES: Final = 64
VERSION_BYTES: Final = 64
KEY_ID_BYTES: Final = 16
N_INPUTS: Final = len(FEATURE_NAMES)

RECORD = np.dtype(
    [
        ("received_at", "<f8"),  # unix seconds, when the request arrived
        ("request_id", f"S{REQUEST_ID_BYTES}"),
        ("transaction_id", f"S{TRANSACTION_ID_BYTES}"),  # empty: none was sent
        ("row", "<u4"),  # the row's place in its request
        ("model_version", f"S{VERSION_BYTES}"),
        ("api_key_id", f"S{KEY_ID_BYTES}"),
        ("inputs", "<f8", (N_INPUTS,)),  # as received: Time, V1..V28, Amount
        ("fraud_probability", "<f8"),
        ("threshold", "<f8"),
        ("is_fraud", "u1"),
    ]
)
RECORD_BYTES: Final = RECORD.itemsize
_ONE = struct.Struct(
    f"<d{REQUEST_ID_BYTES}s{TRANSACTION_ID_BYTES}sI{VERSION_BYTES}s{KEY_ID_BYTES}s{N_INPUTS}dddB"
)
assert _ONE.size == RECORD_BYTES, "the struct and the dtype must lay a record out alike"


def encode_one(
    received_at: float,
    request_id: str,
    transaction_id: str | None,
    model_version: str,
    api_key_id: str,
    inputs: list[float],
    fraud_probability: float,
    threshold: float,
    is_fraud: bool,
) -> bytes:
    """One row's record (a single /predict)."""
    return _ONE.pack(
        received_at,
        request_id.encode(),
        transaction_id.encode() if transaction_id else b"",
        0,
        model_version.encode(),
        api_key_id.encode(),
        *inputs,
        fraud_probability,
        threshold,
        is_fraud,
    )


def encode_many(
    received_at: float,
    request_id: str,
    transaction_ids: Sequence[str | None] | None,
    model_version: str,
    api_key_id: str,
    inputs: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    flags: np.ndarray,
    rows: np.ndarray | None = None,
) -> bytes:
    """A batch's records; `rows` picks the rows to keep (a sample), all when None."""
    if rows is None:
        rows = np.arange(inputs.shape[0], dtype=np.uint32)
    records = np.zeros(rows.shape[0], dtype=RECORD)
    records["received_at"] = received_at
    records["request_id"] = request_id.encode()
    if transaction_ids is not None:
        records["transaction_id"] = [(transaction_ids[i] or "").encode() for i in rows.tolist()]
    records["row"] = rows
    records["model_version"] = model_version.encode()
    records["api_key_id"] = api_key_id.encode()
    records["inputs"] = inputs[rows]
    records["fraud_probability"] = probabilities[rows]
    records["threshold"] = threshold
    records["is_fraud"] = flags[rows]
    return records.tobytes()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """The whole records in `data`, and the bytes of a torn last record left over (a worker
    killed in the middle of a write leaves one)."""
    whole = len(data) - len(data) % RECORD_BYTES
    return np.frombuffer(data, dtype=RECORD, count=whole // RECORD_BYTES), len(data) - whole
