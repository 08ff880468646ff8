import gzip
from pathlib import Path

import numpy as np
import pytest

from ml.data import DataError, load_dataset
from ml.runtime.schema import COLUMNS, FEATURE_NAMES
from ml.testing.processes import DEV_DATA

HEADER = ",".join(f'"{c}"' for c in COLUMNS)


def row(label: str = '"0"', **overrides: str) -> str:
    values = {name: "0.5" for name in FEATURE_NAMES} | overrides
    return ",".join(values[name] for name in FEATURE_NAMES) + "," + label


def write(tmp_path: Path, *lines: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_the_real_sample_exactly() -> None:
    data = load_dataset(DEV_DATA)
    assert data.n_rows == 11_579
    assert data.n_fraud == 260
    assert data.sha256 == "f3219de4d1adb4393680b7eeda91072f57e6c7f09e289c983600a408b161a3d9"
    assert data.X.shape == (11_579, 30)
    assert data.X.dtype == np.float64
    # First row of the file, full precision: Time=1, V1=-1.35835406159823, Amount=378.66.
    assert data.X[0, 0] == 1.0
    assert data.X[0, 1] == -1.35835406159823
    assert data.X[0, -1] == 378.66


def test_plain_and_gzip_give_the_same_data_and_fingerprint(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_bytes(gzip.decompress(DEV_DATA.read_bytes()))
    a, b = load_dataset(plain), load_dataset(DEV_DATA)
    assert a.sha256 == b.sha256
    assert np.array_equal(a.X, b.X)
    assert np.array_equal(a.y, b.y)


def test_unquoted_header_and_reordered_columns_are_read(tmp_path: Path) -> None:
    header = ",".join(reversed(COLUMNS))
    values = ["1", *[str(float(i)) for i in range(len(FEATURE_NAMES))][::-1]]
    other = ["0"] + ["2.0"] * len(FEATURE_NAMES)
    data = load_dataset(write(tmp_path, header, ",".join(values), ",".join(other)))
    assert data.X[0].tolist() == [float(i) for i in range(len(FEATURE_NAMES))]
    assert data.y.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], "the file is empty"),
        ([HEADER], "has a header but no transaction rows"),
        ([HEADER.replace(',"V7"', "")], "line 1: missing columns ['V7']"),
        ([HEADER + ',"Extra"'], "line 1: unexpected columns ['Extra']"),
        ([HEADER, row(V3="abc"), row('"1"')], "line 2, column 'V3': not a number: 'abc'"),
        ([HEADER, row(), row('"1"', V9="")], "line 3, column 'V9': missing, empty or NaN value"),
        ([HEADER, row(), row('"1"', V9="NaN")], "line 3, column 'V9': missing, empty or NaN"),
        ([HEADER, row(Amount="inf"), row('"1"')], "line 2, column 'Amount': infinite value inf"),
        ([HEADER, row(), row('"2"')], "line 3, column 'Class': label must be 0 or 1, got 2"),
        ([HEADER, row(), row('"0.5"')], "line 3, column 'Class': label must be 0 or 1, got 0.5"),
        ([HEADER, row(), row()], "all 2 rows have the same label, legit (0)"),
        ([HEADER, row('"1"'), row('"1"')], "all 2 rows have the same label, fraud (1)"),
        ([HEADER, row(), row() + ",7", row('"1"')], "line 3: expected 31 fields, found 32"),
        ([HEADER, row(), "", row('"1"')], "line 3: blank line"),
    ],
    ids=[
        "empty",
        "header-only",
        "missing-column",
        "unexpected-column",
        "non-numeric",
        "empty-value",
        "nan",
        "infinite",
        "label-2",
        "label-fraction",
        "single-class-legit",
        "single-class-fraud",
        "too-many-fields",
        "blank-line",
    ],
)
def test_bad_files_get_one_clear_error(tmp_path: Path, lines: list[str], expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_dataset(tmp_path / "nope.csv")


def test_single_class_allowed_when_asked(tmp_path: Path) -> None:
    data = load_dataset(write(tmp_path, HEADER, row(), row()), require_both_classes=False)
    assert data.n_fraud == 0
