"""Reading the decision log back from the store: every captured row as one Arrow table.

The files are read through the store's own reader (S3 with its credentials and endpoint, or a
directory), so the same code reads moto, MinIO, S3 and `file://` stores; partitions outside the
window asked for are skipped by their key (`date=YYYY-MM-DD`), never downloaded.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from ml.runtime.capture_files import CAPTURES_PREFIX, capture_schema, read_parquet
from ml.runtime.store import ArtifactReader

_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})/")


class CaptureReadError(Exception):
    """A captured file that is not the capture schema's Parquet (the message names it)."""


def capture_keys(store: ArtifactReader, since: date | None = None) -> list[str]:
    """The Parquet files of the decision log, from the day `since` on (all when None)."""
    keys = [k for k in store.list_keys(CAPTURES_PREFIX) if k.endswith(".parquet")]
    if since is None:
        return keys
    return [k for k in keys if (m := _DATE.search(k)) is None or m.group(1) >= since.isoformat()]


def read_captures(store: ArtifactReader, since: datetime | None = None) -> pa.Table:
    """Every captured row received at or after `since` (all when None), in the capture schema."""
    schema = capture_schema()
    tables = []
    for key in capture_keys(store, None if since is None else since.date()):
        try:
            table = read_parquet(store.get(key))
            tables.append(table.select(schema.names).cast(schema))
        except (pa.ArrowException, KeyError) as exc:
            problem = f"{store.uri}/{key} is not a captured-rows file: {exc}"
            raise CaptureReadError(problem) from None
    captured = pa.concat_tables(tables) if tables else schema.empty_table()
    if since is not None:
        import pyarrow.compute as pc

        captured = captured.filter(pc.greater_equal(captured["received_at"], pa.scalar(since)))
    return captured


def captured_ids(store: ArtifactReader) -> set[str]:
    """Every transaction key the decision log holds."""
    return set(read_captures(store).column("transaction_id").to_pylist())


def since_ago(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h` or `90m` before now, as `--since` takes it."""
    match = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if match is None:
        raise ValueError(f"--since {text!r}: expected a number and a unit, as 30d, 12h or 90m")
    amount, unit = int(match.group(1)), match.group(2)
    span = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}[unit]
    return (now or datetime.now(UTC)) - amount * span
