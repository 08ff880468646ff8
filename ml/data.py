"""Read and validate transaction CSV files in the Kaggle `creditcard.csv` format.

Every problem is reported once, as a `DataError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.runtime.schema import COLUMNS, FEATURE_NAMES, LABEL

GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file that cannot be used, with where and why."""

    def __init__(
        self, path: Path, problem: str, *, line: int | None = None, column: str | None = None
    ):
        self.path = path
        self.problem = problem
        self.line = line
        self.column = column
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Dataset:
    """Validated transactions: features in `FEATURE_NAMES` order and 0/1 labels."""

    path: Path
    X: np.ndarray  # float64, shape (n_rows, 30)
    y: np.ndarray  # int8, shape (n_rows,)
    sha256: str  # of the uncompressed CSV bytes, so plain and .gz copies share a fingerprint

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_fraud(self) -> int:
        return int(self.y.sum())

    @property
    def prevalence(self) -> float:
        return self.n_fraud / self.n_rows

    def fingerprint(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "rows": self.n_rows,
            "frauds": self.n_fraud,
            "prevalence": self.prevalence,
        }


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of a plain or gzip file (detected by content, not name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(path, f"corrupt gzip file: {exc}") from None
    return raw


def load_dataset(path: Path | str, *, require_both_classes: bool = True) -> Dataset:
    """Read, validate and return a labelled transaction file.

    `require_both_classes` refuses a file with only frauds or only legit rows: neither training
    nor an F1 comparison means anything on it.
    """
    path = Path(path)
    raw = read_bytes(path)
    content = raw.rstrip(b"\r\n\t ")  # trailing blank lines are harmless; inner ones are not
    if not content:
        raise DataError(path, "the file is empty; expected a header and transaction rows")
    header = _read_header(path, content)
    frame = _parse(path, content, header)

    values = frame.to_numpy(dtype=np.float64, copy=False)
    _refuse_non_finite(path, values, header)
    if values.shape[0] == 0:
        raise DataError(path, "the file has a header but no transaction rows")

    label_column = header.index(LABEL)
    labels = values[:, label_column]
    bad = np.flatnonzero((labels != 0.0) & (labels != 1.0))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            path, f"label must be 0 or 1, got {float(labels[row]):g}", line=row + 2, column=LABEL
        )
    y = labels.astype(np.int8)
    if require_both_classes and np.unique(y).size < 2:
        only = "fraud (1)" if y[0] == 1 else "legit (0)"
        raise DataError(
            path, f"all {y.size} rows have the same label, {only}; both classes are needed"
        )

    order = [header.index(name) for name in FEATURE_NAMES]
    X = np.ascontiguousarray(values[:, order])
    return Dataset(path=path, X=X, y=y, sha256=hashlib.sha256(raw).hexdigest())


def _read_header(path: Path, content: bytes) -> list[str]:
    first_line = content.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip("\r")
    header = next(csv.reader([first_line]))
    missing = [name for name in COLUMNS if name not in header]
    unexpected = [name for name in header if name not in COLUMNS]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    if duplicated:
        problems.append(f"duplicated columns {duplicated}")
    if problems:
        raise DataError(
            path,
            "; ".join(problems) + f"; expected exactly {len(COLUMNS)} columns: Time, V1..V28, "
            "Amount, Class",
            line=1,
        )
    return header


def _parse(path: Path, content: bytes, header: list[str]) -> pd.DataFrame:
    """The fast path is pandas' C parser; only when it fails do we scan for where and why."""
    try:
        return pd.read_csv(
            io.BytesIO(content),
            dtype=np.float64,
            skip_blank_lines=False,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        _locate_parse_problem(path, content, header)
        raise DataError(path, f"cannot parse CSV: {exc}") from None


def _locate_parse_problem(path: Path, content: bytes, header: list[str]) -> None:
    text = io.StringIO(content.decode("utf-8", errors="replace"))
    reader = csv.reader(text)
    next(reader)
    for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise DataError(path, f"expected {len(header)} fields, found {len(row)}", line=line)
        for column, value in zip(header, row, strict=True):
            try:
                float(value)
            except ValueError:
                raise DataError(
                    path, f"not a number: {value[:40]!r}", line=line, column=column
                ) from None


def _refuse_non_finite(path: Path, values: np.ndarray, header: list[str]) -> None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    row, col = (int(i) for i in np.argwhere(bad)[0])
    value = values[row, col]
    if np.isnan(value):
        if np.isnan(values[row]).all():
            raise DataError(path, "blank line", line=row + 2)
        problem = "missing, empty or NaN value"
    else:
        problem = f"infinite value {float(value)}"
    raise DataError(path, problem, line=row + 2, column=header[col])
