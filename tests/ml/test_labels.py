"""Label import: bad rows refused whole and named (row, field, value), duplicates resolved
latest-wins within a file and across imports, unknown ids counted, the same file written once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.labels import LabelFileError, import_labels, read_label_file, read_labels
from ml.runtime.local_store import LocalStore

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.root.mkdir()
    return store


def csv(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def labels_of(table: pa.Table) -> dict[str, int]:
    return dict(zip(table["id"].to_pylist(), table["label"].to_pylist(), strict=True))


def test_duplicates_in_a_file_keep_the_latest_label(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "id,label,labelled_at\n"
        "tx-1,0,2026-11-01T00:00:00Z\n"
        "tx-1,1,2026-11-20T00:00:00Z\n"  # the chargeback came later: fraud
        "tx-2,1,2026-11-02\n"
        "tx-2,0,2026-11-02\n",  # a tie: the later row wins
    )
    read = read_label_file(path, now=NOW)
    assert labels_of(read.labels) == {"tx-1": 1, "tx-2": 0}
    assert read.rows_read == 4


def test_bad_rows_are_named_and_nothing_is_imported(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "id,label,labelled_at\n"
        "tx-1,1,2026-11-01\n"
        "tx 2,1,2026-11-01\n"
        "tx-3,yes,2026-11-01\n"
        "tx-4,0,next tuesday\n"
        "tx-5,0,2027-01-01\n",
    )
    with pytest.raises(LabelFileError) as caught:
        read_label_file(path, now=NOW)
    message = str(caught.value)
    assert "4 invalid row(s), nothing imported" in message
    assert "row 2, id='tx 2'" in message
    assert "row 3, label='yes': expected 0 (legitimate) or 1 (fraud)" in message
    assert "row 4, labelled_at='next tuesday'" in message
    assert "row 5, labelled_at=" in message  # in the future


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="missing column"):
        read_label_file(csv(tmp_path, "transaction,label\ntx-1,1\n"), now=NOW)
    with pytest.raises(LabelFileError, match=r"\.csv, \.csv\.gz or \.parquet"):
        read_label_file(csv(tmp_path, "{}", name="labels.json"), now=NOW)


def test_parquet_files_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "label": [1, 0]}), path)
    assert labels_of(read_label_file(path, now=NOW).labels) == {"a": 1, "b": 0}


def test_unknown_ids_are_counted_and_the_same_file_is_written_once(
    tmp_path: Path, store: LocalStore
) -> None:
    path = csv(tmp_path, "id,label\ntx-1,1\ntx-2,0\nghost,1\n")
    report = import_labels(store, read_label_file(path, now=NOW), {"tx-1", "tx-2"})
    assert (report.labels, report.frauds, report.unknown_ids) == (3, 2, 1)
    assert report.unknown_examples == ["ghost"]
    assert report.key is not None
    assert report.key.startswith("labels/date=2026-12-03/")
    again = import_labels(store, read_label_file(path, now=NOW), None)
    assert again.key is None
    assert len(store.list_keys("labels/")) == 1


def test_a_later_import_corrects_an_earlier_one(tmp_path: Path, store: LocalStore) -> None:
    first = csv(tmp_path, "id,label,labelled_at\ntx-1,0,2026-11-01\ntx-2,0,2026-11-01\n", "a.csv")
    second = csv(tmp_path, "id,label,labelled_at\ntx-1,1,2026-11-25\n", "b.csv")
    import_labels(store, read_label_file(first, now=NOW), None)
    import_labels(store, read_label_file(second, now=NOW), None)
    assert labels_of(read_labels(store)) == {"tx-1": 1, "tx-2": 0}
