"""Scoring request bodies, from bytes to what the data plane takes: the common batch body
parsed straight into a float64 matrix, a shape guard that bounds how much work any body can
ask of validation, and pydantic for everything else. The one module that reads them.

Clients send batches at volume as `{"transactions": [[30 numbers], ...]}`, perhaps with
`threshold` and `explain`. pydantic parses that into 30,000 Python floats per 1,000 rows
(1.9 ms), which were then copied into an array (0.55 ms) and freed; simdjson (pysimdjson, a
parser fuzzed continuously by OSS-Fuzz) parses the same bytes and writes the numbers straight
into the array's memory: 0.9 ms with every check below, and no Python object per number.

This path only takes a body that `BatchRequest` would accept with the same meaning. Anything
else (rows as objects, a string or boolean among the numbers, a short row, a nested array,
NaN, a repeated key, bytes that are not JSON) returns None, and the route validates the body
with pydantic as before, so every refusal keeps its message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
import simdjson
from pydantic import BaseModel, ValidationError

from ml.runtime.schema import FEATURE_NAMES
from service.api.errors import invalid_request
from service.api.schemas import BatchOptions, BatchRequest
from service.errors import InvalidInput

ROW_LENGTH = len(FEATURE_NAMES)
OPTION_KEYS = frozenset(BatchOptions.model_fields)

# What simdjson raises besides ValueError: BIGINT_ERROR for an integer beyond 64 bits,
# DEPTH_ERROR past 1,024 levels of nesting (both once answered 500).
SIMDJSON_ERRORS = (ValueError, UnicodeDecodeError, RuntimeError)

# The shape guard. pydantic validates (and describes) every item before any length limit
# applies: a 2 MB body of 10^6 scalar rows took 7.8 s of a worker's loop, one row object with
# 180,000 extra keys 4.2 s. A body this small cannot hold enough items to matter (pydantic
# spends < 1 ms on it), so it skips the guard: /predict's hot path never pays for it.
SHAPE_FREE_BYTES = 16 * 1024
# Most keys a body, or a row given as an object, may have; most items a row array may have.
# Twice what a valid body holds (30 features; 4 top-level fields), so that a body a little
# off still gets pydantic's field-by-field messages.
MAX_OBJECT_KEYS = 2 * ROW_LENGTH
MAX_ROW_ITEMS = 2 * ROW_LENGTH


@dataclass(frozen=True)
class ParsedBatch:
    rows: np.ndarray  # float64 (n, 30), every value finite
    threshold: float | None
    explain: int
    ids: list[str | None] | None = None  # the client's, by row; None: no row named one


Body = TypeVar("Body", bound=BaseModel)

# BatchRequest stops at the first invalid row (service/api/schemas.py): the message says so.
FIRST_BAD_ROW = " (rows after the first invalid one are not checked)"


def parse_batch(raw: bytes, check_rows: Callable[[int], None]) -> ParsedBatch:
    """A /predict/batch body. Rows as arrays go straight into a matrix; any other body, named
    rows or one to refuse, is shape-checked and validated by pydantic. simdjson parses the
    body once for both (a large body that missed the fast path was parsed twice: ~1 ms/MB)."""
    document = _parse_any(raw)
    parsed = parse_row_arrays(raw, document)
    if parsed is not None:
        return parsed
    if len(raw) > SHAPE_FREE_BYTES:
        _check_document_shape(document, check_rows)
    body = validated(raw, BatchRequest, FIRST_BAD_ROW)
    rows = np.array([feature_row(r) for r in body.transactions], dtype=np.float64)
    ids = [getattr(row, "id", None) for row in body.transactions]  # arrays carry none
    return ParsedBatch(
        rows.reshape(-1, ROW_LENGTH),
        body.threshold,
        body.explain,
        ids if any(i is not None for i in ids) else None,
    )


def parse_row_arrays(raw: bytes, document: object = None) -> ParsedBatch | None:
    """The batch in `raw` if its rows are all arrays of 30 finite numbers; None otherwise.
    `document` is `raw` already parsed, if it was."""
    if document is None:
        document = _parse_any(raw)
    if not isinstance(document, simdjson.Object):
        return None  # not JSON, or numbers simdjson refuses: pydantic says why
    if len(document) > len(OPTION_KEYS) + 1:
        return None
    keys = list(document.keys())
    # simdjson reads a repeated key's first value, pydantic its last.
    if len(set(keys)) != len(keys):
        return None
    if "transactions" not in keys or set(keys) - OPTION_KEYS - {"transactions"}:
        return None
    rows = _rows(document["transactions"], raw)
    if rows is None:
        return None
    options = {key: document[key] for key in keys if key != "transactions"}
    if any(isinstance(value, simdjson.Object | simdjson.Array) for value in options.values()):
        return None
    try:
        # JSON in, as the full body would be validated: the same rules for 2 against 2.0.
        checked = BatchOptions.model_validate_json(orjson.dumps(options))
    except ValidationError:
        return None
    return ParsedBatch(rows, checked.threshold, checked.explain)


def _rows(transactions: object, raw: bytes) -> np.ndarray | None:
    if not isinstance(transactions, simdjson.Array) or len(transactions) == 0:
        return None
    n = len(transactions)
    if not all(isinstance(row, simdjson.Array) and len(row) == ROW_LENGTH for row in transactions):
        return None
    # as_buffer flattens nested arrays; with one `[` for the list and one per row there are
    # none (a `[` inside a string would only send the body to pydantic).
    if raw.count(b"[") != n + 1:
        return None
    try:
        flat = np.frombuffer(transactions.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:
        return None  # a string, boolean, null or object among the numbers
    if flat.size != n * ROW_LENGTH or not np.isfinite(flat).all():
        return None
    return flat.reshape(n, ROW_LENGTH)


def check_shape(raw: bytes, check_rows: Callable[[int], None]) -> None:
    """Refuse a body whose counts alone make it invalid, before pydantic looks at any item:
    a row count `check_rows` refuses (the data plane's batch limits), a row or body with too
    many keys or items (422). A body this cannot parse is left to pydantic, which says why."""
    if len(raw) > SHAPE_FREE_BYTES:
        _check_document_shape(_parse_any(raw), check_rows)


def _check_document_shape(document: object, check_rows: Callable[[int], None]) -> None:
    if not isinstance(document, simdjson.Object | dict):
        return
    _check_size("body", document, MAX_OBJECT_KEYS)
    rows = document.get("transactions")
    if isinstance(rows, simdjson.Array | list):
        check_rows(len(rows))
        for index, row in enumerate(rows):
            _check_size(f"transactions[{index}]", row, MAX_ROW_ITEMS)
    for name in ("features", "transaction"):
        _check_size(name, document.get(name), MAX_ROW_ITEMS)


def _parse_any(raw: bytes) -> object:
    """The body as simdjson proxies (cheap: nothing is converted until read); as Python
    objects where simdjson refuses a number; None if it is not JSON at all."""
    try:
        return simdjson.Parser().parse(raw)
    except SIMDJSON_ERRORS:
        pass
    try:
        return orjson.loads(raw)  # integers beyond 64 bits, which pydantic also accepts
    except orjson.JSONDecodeError:
        return None


def validated(raw: bytes, model: type[Body], note: str = "") -> Body:
    """`raw` parsed and validated by pydantic in one pass; `note` ends the message of an
    error about the rows."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        about_rows = any(error["loc"][:1] == ("transactions",) for error in errors)
        raise invalid_request(errors, note if about_rows else "") from None


def feature_row(values: Any) -> list[float]:
    """A row given as 30 numbers, or as an object naming them, as the 30 numbers."""
    if isinstance(values, list):
        return values
    return [getattr(values, name) for name in FEATURE_NAMES]


def _check_size(field: str, value: object, limit: int) -> None:
    if isinstance(value, simdjson.Object | dict):
        kind = "keys"
    elif isinstance(value, simdjson.Array | list):
        kind = "items"
    else:
        return
    if len(value) > limit:
        expected = (
            "a request body has at most 4 fields"
            if field == "body"
            else f"a transaction has {ROW_LENGTH}: Time, V1..V28, Amount"
        )
        problem = f"at most {limit} {kind} are read here ({expected}), received {len(value)}"
        raise InvalidInput(
            f"invalid request: {field}: {problem}",
            details=[{"field": field, "problem": problem, "received": len(value)}],
        )
