"""A small typed client for the fraud-scoring API, on the standard library alone.

    from service.client import FraudClient

    with FraudClient("http://127.0.0.1:8000", api_key="...") as client:
        print(client.predict({"Time": 0.0, "V1": -1.36, ..., "Amount": 149.62}))
        for prediction in client.score(rows):  # any number of rows, sent in batches
            ...

Rows are a sequence of 30 numbers (Time, V1..V28, Amount) or a mapping of those names, which
may also hold the row's "id" (yours, echoed back; else the service names it).
A 503 (no model loaded yet, store unreachable) and a connection that fails before any answer
are retried with exponential backoff; every other error raises `FraudAPIError` carrying the
service's error code, message and per-field details.

It imports nothing outside the standard library, so any environment that has the package
installed (`pip install .`, `make run`'s, the images) can use it, from any directory. One
keep-alive connection per client (`http.client`), opened again after a failure.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

Row = Sequence[float] | Mapping[str, float | str]  # a mapping may hold the row's "id"

RETRIED_STATUS = 503
DEFAULT_BATCH_ROWS = 1000  # the service's default FRAUD_MAX_BATCH_ROWS


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float
    contribution: float  # log-odds, positive towards fraud


@dataclass(frozen=True)
class Prediction:
    id: str | None  # yours, or `<request_id>:<row>` when another row of its batch had one
    fraud_probability: float
    is_fraud: bool
    threshold: float
    model_version: str
    base_value: float | None = None  # with explain: log-odds before any input is known
    reasons: tuple[Reason, ...] = ()  # with explain: the top inputs, largest first


class FraudAPIError(Exception):
    """An error answer of the service, in its one error shape."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code: str = error.get("code", "unknown")
        self.message: str = error.get("message", str(body))
        self.details: list[dict[str, Any]] = error.get("details", [])
        self.request_id: str | None = body.get("request_id") if isinstance(body, dict) else None
        super().__init__(f"{status} {self.code}: {self.message}")


class FraudClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 4,
        backoff_s: float = 0.2,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self._url = url
        self._prefix = url.path.rstrip("/")
        self._headers = {"X-API-Key": api_key, "Accept": "application/json"}
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.batch_rows = batch_rows

    def predict(
        self,
        row: Row,
        threshold: float | None = None,
        explain: int = 0,
        transaction_id: str | None = None,
    ) -> Prediction:
        """One row's prediction; with `explain`, its top `explain` reasons too."""
        body: dict[str, Any] = _one_row(row) | _options(threshold, explain)
        if transaction_id is not None:
            body["id"] = transaction_id
        answer = self._send("POST", "/predict", body)
        return _prediction(answer, answer)

    def score(
        self, rows: Sequence[Row], threshold: float | None = None, explain: int = 0
    ) -> list[Prediction]:
        """Every row's prediction, in order, sent `batch_rows` at a time."""
        predictions: list[Prediction] = []
        for start in range(0, len(rows), self.batch_rows):
            chunk = rows[start : start + self.batch_rows]
            body: dict[str, Any] = {"transactions": [_plain(row) for row in chunk]}
            answer = self._send("POST", "/predict/batch", body | _options(threshold, explain))
            predictions += [_prediction(p, answer) for p in answer["predictions"]]
        return predictions

    def model(self) -> dict[str, Any]:
        """The live model card: version, metrics at production prevalence, threshold."""
        return self._send("GET", "/model", None)

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                status, retry_after, payload = self._exchange(method, path, body)
            except (OSError, http.client.HTTPException):  # refused, reset, timed out
                self.close()
                if last:
                    raise
                self._wait(attempt, None)
                continue
            if status == RETRIED_STATUS and not last:
                self._wait(attempt, retry_after)
                continue
            if status >= 400:
                raise FraudAPIError(status, _json_or_text(payload))
            answer: dict[str, Any] = json.loads(payload)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * 2 ** (attempt - 1)
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        time.sleep(delay)

    def _exchange(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, str | None, bytes]:
        """One request on the kept-alive connection: status, Retry-After, body."""
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._url.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(
                self._url.hostname or "", self._url.port, timeout=self._timeout_s
            )
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, self._prefix + path, body=data, headers=headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.will_close:
            self.close()
        return response.status, response.getheader("Retry-After"), payload

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> FraudClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _options(threshold: float | None, explain: int) -> dict[str, Any]:
    options: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
    return options | ({"explain": explain} if explain else {})


def _prediction(row: dict[str, Any], answer: dict[str, Any]) -> Prediction:
    """One row's answer (`row`), with what the response says for all its rows (`answer`)."""
    return Prediction(
        row.get("id"),
        row["fraud_probability"],
        row["is_fraud"],
        answer["threshold"],
        answer["model_version"],
        row.get("base_value"),
        tuple(Reason(**r) for r in row.get("reasons", ())),
    )


def _plain(row: Row) -> list[float] | dict[str, float | str]:
    return dict(row) if isinstance(row, Mapping) else list(row)


def _one_row(row: Row) -> dict[str, Any]:
    """/predict's body: a mapping's "id" is the body's own, as the service takes it there."""
    plain = _plain(row)
    if not isinstance(plain, dict):
        return {"features": plain}
    body: dict[str, Any] = {"transaction": {k: v for k, v in plain.items() if k != "id"}}
    return body | ({"id": plain["id"]} if "id" in plain else {})


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


def read_rows(path: str) -> Iterator[Row]:
    """The rows of an examples/ request body: one row, or a batch."""
    with open(path, encoding="utf-8") as f:
        body = json.load(f)
    if "transactions" in body:
        yield from body["transactions"]
    else:
        yield body.get("features") or body["transaction"]
