"""The batch fast path (service/api/batch_parsing.py) takes only what `BatchRequest` accepts, with
the same numbers and options; everything else goes to pydantic, whose refusals are unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.testing.keys import AUTH
from service.api.batch_parsing import SHAPE_FREE_BYTES, check_shape, parse_row_arrays
from service.api.schemas import BatchRequest
from service.errors import InvalidInput, ServiceError, TooLarge

ROW = [0.5] * 30
# Numbers at the edges of float64 and of JSON's number grammar, in every row position.
EDGE_NUMBERS = [
    0,
    -0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    9007199254740993,
    18446744073709551615,
    -9223372036854775808,
    0.1,
    1e-7,
    123456.789e3,
    -3.14159,
    1,
    2,
]


def pydantic_rows(raw: bytes) -> tuple[np.ndarray, float | None, int]:
    body = BatchRequest.model_validate_json(raw)
    return np.array(body.transactions, dtype=np.float64), body.threshold, body.explain


@pytest.mark.parametrize(
    "body",
    [
        {"transactions": [ROW]},
        {"transactions": [EDGE_NUMBERS * 2, (EDGE_NUMBERS * 2)[::-1]]},
        {"transactions": [ROW] * 3, "threshold": 0.25, "explain": 2},
        {"explain": 2.0, "transactions": [ROW], "threshold": None},  # JSON Schema's integer
    ],
)
def test_array_rows_parse_to_exactly_what_pydantic_gives(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    parsed = parse_row_arrays(raw)
    assert parsed is not None
    rows, threshold, explain = pydantic_rows(raw)
    assert parsed.rows.dtype == np.float64
    assert parsed.rows.shape == rows.shape
    assert parsed.rows.tobytes() == rows.tobytes()  # bit for bit, -0.0 and subnormals too
    assert (parsed.threshold, parsed.explain) == (threshold, explain)


def test_random_values_parse_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    magnitudes = 10.0 ** rng.integers(-300, 300, size=(200, 30))
    values = rng.standard_normal((200, 30)) * magnitudes
    raw = json.dumps({"transactions": values.tolist()}).encode()
    parsed = parse_row_arrays(raw)
    assert parsed is not None
    assert parsed.rows.tobytes() == values.tobytes()


LEFT_TO_PYDANTIC = {
    "a boolean among the numbers": b'{"transactions": [[true' + b", 0.5" * 29 + b"]]}",
    "a number as a string": b'{"transactions": [["0.5"' + b", 0.5" * 29 + b"]]}",
    "a null": b'{"transactions": [[null' + b", 0.5" * 29 + b"]]}",
    "a nested array of one": b'{"transactions": [[[0.5]' + b", 0.5" * 29 + b"]]}",
    "a short row": b'{"transactions": [[0.5' + b", 0.5" * 28 + b"]]}",
    "a long row": b'{"transactions": [[0.5' + b", 0.5" * 30 + b"]]}",
    "a named row": json.dumps({"transactions": [{"Time": 0.5}]}).encode(),
    "a scalar row": b'{"transactions": [0.5]}',
    "no rows": b'{"transactions": []}',
    "no transactions": b'{"threshold": 0.5}',
    "an unknown key": json.dumps({"transactions": [ROW], "rows": 1}).encode(),
    # simdjson reads the first of a repeated key, pydantic the last: 0.5 against 0.9.
    "a repeated key": b'{"transactions": [[0.5' + b", 0.5" * 29 + b']], "threshold": 0.5, '
    b'"threshold": 0.9}',
    "NaN": b'{"transactions": [[NaN' + b", 0.5" * 29 + b"]]}",
    "a number beyond float64": b'{"transactions": [[1e400' + b", 0.5" * 29 + b"]]}",
    "a threshold out of range": json.dumps({"transactions": [ROW], "threshold": 1.5}).encode(),
    "a threshold as a string": json.dumps({"transactions": [ROW], "threshold": "0.5"}).encode(),
    "explain as a boolean": json.dumps({"transactions": [ROW], "explain": True}).encode(),
    "explain as an array": json.dumps({"transactions": [ROW], "explain": [1]}).encode(),
    "a top-level array": json.dumps([ROW]).encode(),
    "bytes that are not UTF-8": b'\xff{"transactions": []}',
    "trailing bytes": json.dumps({"transactions": [ROW]}).encode() + b" x",
}


@pytest.mark.parametrize("raw", LEFT_TO_PYDANTIC.values(), ids=LEFT_TO_PYDANTIC.keys())
def test_anything_else_is_left_to_pydantic(raw: bytes) -> None:
    assert parse_row_arrays(raw) is None


@pytest.mark.parametrize(
    ("case", "field", "received"),
    [
        ("a boolean among the numbers", "transactions[0][0]", True),
        ("a short row", "transactions[0]", "list"),
        ("a threshold out of range", "threshold", 1.5),
    ],
)
def test_refusals_still_name_the_field(
    client: TestClient, case: str, field: str, received: Any
) -> None:
    response = client.post(
        "/predict/batch",
        content=LEFT_TO_PYDANTIC[case],
        headers=AUTH | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["received"]) == (field, received)


# --- the shape guard: counts refused before pydantic sees an item ------------------------------


def refuse_over(limit: int) -> Callable[[int], None]:
    def check_rows(n_rows: int) -> None:
        if n_rows > limit:
            raise TooLarge(f"{n_rows} rows")

    return check_rows


def test_the_shape_guard_leaves_small_bodies_to_pydantic() -> None:
    body = json.dumps({"transactions": [ROW] * 3, "extra": list(range(100))}).encode()
    assert len(body) <= SHAPE_FREE_BYTES
    check_shape(body, refuse_over(1))  # no refusal: pydantic names the problems


@pytest.mark.parametrize(
    ("body", "refusal", "field"),
    [
        (b'{"transactions": [' + b",".join([b"1"] * 20_000) + b"]}", TooLarge, None),
        (
            b'{"transactions": [1, [' + b",".join([b"1"] * 20_000) + b"]]}",
            InvalidInput,
            "transactions[1]",
        ),
        (
            b'{"transaction": {' + b",".join(b'"k%d": 1' % i for i in range(2000)) + b"}}",
            InvalidInput,
            "transaction",
        ),
        (b"{" + b",".join(b'"k%d": 1' % i for i in range(2000)) + b"}", InvalidInput, "body"),
        (b'{"features": [' + b",".join([b"1"] * 20_000) + b"]}", InvalidInput, "features"),
        (
            b'{"x": [100000000000000000000], "features": [' + b",".join([b"1"] * 20_000) + b"]}",
            InvalidInput,
            "features",
        ),
    ],
    ids=["rows", "row-items", "transaction-keys", "body-keys", "feature-items", "bigint-elsewhere"],
)
def test_the_shape_guard_refuses_by_count(
    body: bytes, refusal: type[ServiceError], field: str | None
) -> None:
    assert len(body) > SHAPE_FREE_BYTES
    with pytest.raises(refusal) as raised:
        check_shape(body, refuse_over(1000))
    if field is not None:
        assert raised.value.details[0]["field"] == field


def test_numbers_simdjson_refuses_go_to_pydantic_not_a_500() -> None:
    assert parse_row_arrays(b'{"transactions": [[100000000000000000000]]}') is None
    assert parse_row_arrays(b'{"transactions": ' + b"[" * 5000 + b"]" * 5000 + b"}") is None
