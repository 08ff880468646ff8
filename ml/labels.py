"""Labels: what a transaction turned out to be, weeks after it was scored.

`fraudctl labels import FILE` reads a CSV or Parquet file with `id`, `label` (0 or 1) and an
optional `labelled_at`, refuses it whole if any row is wrong (each problem named by row, field
and value), keeps the latest label of an id given twice, and writes it to the store as one
Parquet file under `labels/`. Ids the decision log has never seen are counted and reported, and
kept: a capture sampled below 1 has no row for them, and the join ignores them.

Across imports the latest `labelled_at` wins (an analyst's verdict after a chargeback corrects
it); `read_labels` applies that rule.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ml.runtime.capture_files import parquet_bytes, read_parquet
from ml.runtime.store import ArtifactReader, ArtifactStore, ObjectExists

LABELS_PREFIX = "labels/"
# A client's id (1-64 printable ASCII) or the default `<request_id>:<row>` (up to 128 + 11).
_ID = re.compile(r"^[!-~]{1,140}$")
MAX_PROBLEMS_SHOWN = 10


@dataclass
class LabelProblem:
    row: int  # 1-based, as a spreadsheet counts data rows
    field: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}={self.value!r}: {self.problem}"


class LabelFileError(ValueError):
    """A label file that cannot be imported; nothing was written."""

    def __init__(self, path: Path, problems: list[LabelProblem], total: int) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {total - MAX_PROBLEMS_SHOWN} more)" if total > MAX_PROBLEMS_SHOWN else ""
        super().__init__(f"{path}: {total} invalid row(s), nothing imported: {shown}{more}")


@dataclass
class ImportReport:
    rows_read: int
    labels: int  # after duplicates were resolved
    duplicates: int
    frauds: int
    unknown_ids: int
    unknown_examples: list[str] = field(default_factory=list)
    key: str | None = None  # where they were written; None: the same file was imported before


def labels_schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("label", pa.int8()),
            ("labelled_at", pa.timestamp("ms", tz="UTC")),
            ("imported_at", pa.timestamp("ms", tz="UTC")),
        ]
    )


@dataclass(frozen=True)
class LabelFile:
    labels: pa.Table  # one per id
    rows_read: int


def read_label_file(path: Path, now: datetime | None = None) -> LabelFile:
    """The file's labels, validated, one per id (the latest `labelled_at`; the later row on a
    tie). Raises `LabelFileError` naming every bad row."""
    raw = _read_raw(path)
    missing = [name for name in ("id", "label") if name not in raw.column_names]
    if missing:
        problem = LabelProblem(
            0, ",".join(missing), "", f"missing column(s); found {raw.column_names}"
        )
        raise LabelFileError(path, [problem], 1)
    now = now or datetime.now(UTC)
    ids = [None if v is None else str(v) for v in raw.column("id").to_pylist()]
    labels = [None if v is None else str(v).strip() for v in raw.column("label").to_pylist()]
    has_times = "labelled_at" in raw.column_names
    times = raw.column("labelled_at").to_pylist() if has_times else [None] * raw.num_rows
    problems: list[LabelProblem] = []
    when: list[datetime] = []
    for i, (tid, label, at) in enumerate(zip(ids, labels, times, strict=True), start=1):
        if tid is None or not _ID.match(tid):
            problems.append(
                LabelProblem(
                    i, "id", str(tid), "expected 1-140 printable ASCII characters, no spaces"
                )
            )
        if label not in ("0", "1", "0.0", "1.0", "True", "False", "true", "false"):
            problems.append(
                LabelProblem(i, "label", str(label), "expected 0 (legitimate) or 1 (fraud)")
            )
        moment = _moment(at) if has_times and at is not None else now
        if moment is None or moment > now:
            expected = "expected an ISO 8601 time, not in the future"
            problems.append(LabelProblem(i, "labelled_at", str(at), expected))
        when.append(moment or now)
    if problems:
        raise LabelFileError(path, problems, len(problems))
    table = pa.table(
        {
            "id": ids,
            "label": [1 if str(v).lower() in ("1", "1.0", "true") else 0 for v in labels],
            "labelled_at": when,
            "imported_at": [now] * len(ids),
        },
        schema=labels_schema(),
    )
    return LabelFile(latest_per_id(table), raw.num_rows)


def _read_raw(path: Path) -> pa.Table:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return read_parquet(path.read_bytes())
        if name.endswith((".csv", ".csv.gz")):
            options = pacsv.ConvertOptions(column_types={"id": pa.string(), "label": pa.string()})
            # On this thread: see ml.runtime.capture_files.read_parquet.
            reading = pacsv.ReadOptions(use_threads=False)
            return pacsv.read_csv(path, read_options=reading, convert_options=options)
    except (pa.ArrowException, OSError) as exc:
        raise LabelFileError(path, [LabelProblem(0, "file", path.name, str(exc))], 1) from None
    problem = LabelProblem(0, "file", path.name, "expected a .csv, .csv.gz or .parquet file")
    raise LabelFileError(path, [problem], 1)


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def latest_per_id(table: pa.Table) -> pa.Table:
    """One row per id: the latest `labelled_at`, then the latest import, then the last row."""
    ordered = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    ordered = ordered.sort_by(
        [("labelled_at", "ascending"), ("imported_at", "ascending"), ("_row", "ascending")]
    )
    position = pa.array(range(ordered.num_rows), pa.int64())  # the place in that order
    ordered = ordered.set_column(ordered.schema.get_field_index("_row"), "_row", position)
    last = ordered.group_by("id", use_threads=False).aggregate([("_row", "max")])
    return ordered.take(last.column("_row_max")).drop_columns(["_row"]).sort_by("id")


def import_labels(
    store: ArtifactStore, read: LabelFile, known_ids: set[str] | None
) -> ImportReport:
    """Write the labels under labels/, create-only, named by their content: the same file
    imported twice is written once."""
    labels = read.labels
    ids = labels.column("id").to_pylist()
    unknown = [] if known_ids is None else [i for i in ids if i not in known_ids]
    data = parquet_bytes(labels, dictionary=True)
    now = labels.column("imported_at")[0].as_py() if labels.num_rows else datetime.now(UTC)
    content = zip(
        ids,
        labels.column("label").to_pylist(),
        labels.column("labelled_at").to_pylist(),
        strict=True,
    )
    digest = hashlib.sha256("\n".join(f"{i},{y},{t}" for i, y, t in content).encode()).hexdigest()
    key = f"{LABELS_PREFIX}date={now:%Y-%m-%d}/labels-{now:%H%M%S}-{digest[:12]}.parquet"
    same = [k for k in store.list_keys(LABELS_PREFIX) if k.endswith(f"-{digest[:12]}.parquet")]
    written: str | None = None
    if not same:
        try:
            store.put_if_absent(key, data)
            written = key
        except ObjectExists:
            written = None
    return ImportReport(
        rows_read=read.rows_read,
        labels=labels.num_rows,
        duplicates=read.rows_read - labels.num_rows,
        frauds=int(pc.sum(labels.column("label")).as_py() or 0),
        unknown_ids=len(unknown),
        unknown_examples=unknown[:5],
        key=written,
    )


def read_labels(store: ArtifactReader) -> pa.Table:
    """Every imported label, the latest per id."""
    schema = labels_schema()
    tables = [
        read_parquet(store.get(key)).select(schema.names).cast(schema)
        for key in store.list_keys(LABELS_PREFIX)
        if key.endswith(".parquet")
    ]
    return latest_per_id(pa.concat_tables(tables)) if tables else schema.empty_table()
