"""The one place errors become HTTP answers, all in one JSON shape:

{"error": {"code": "...", "message": "...", "details": [{"field", "problem", "received"}]},
 "request_id": "..."}

The service's own errors (`service.errors`) get their status from `STATUS`; the store's and the
bundle's (a failed load) from `load_failure`; pydantic's and Starlette's are translated too.
One handler answers them all, registered for each kind in `ANSWERED_ERRORS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml.runtime.manifest import BundleError
from ml.runtime.schema import FEATURE_NAMES
from ml.runtime.store import (
    InvalidPointer,
    NoProductionModel,
    ObjectNotFound,
    ObjectTooLarge,
    StoreError,
    StoreUnavailable,
)
from service.api.context import request_id_of
from service.errors import (
    Forbidden,
    InvalidInput,
    MalformedRequest,
    NotReady,
    ServiceError,
    TooLarge,
    Unauthenticated,
    UnservableModel,
    UnsupportedByModel,
    UnsupportedEncoding,
)

N_FEATURES = len(FEATURE_NAMES)


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error, "request_id": request_id})


# The HTTP status of each of the service's errors (a subclass inherits its parent's).
STATUS: dict[type[ServiceError], int] = {
    ServiceError: 500,
    MalformedRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    UnsupportedByModel: 409,
    TooLarge: 413,
    UnsupportedEncoding: 415,
    InvalidInput: 422,
    UnservableModel: 502,
    NotReady: 503,
}


@dataclass(frozen=True)
class Answer:
    """An error as the client gets it."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def status_of(error: ServiceError) -> int:
    kind = next(k for k in type(error).__mro__ if k in STATUS)
    return STATUS[kind]


def error_response(exc: BaseException, request_id: str | None) -> Response:
    """The answer to one of `ANSWERED_ERRORS`."""
    answer = as_answer(exc)
    headers = dict(answer.headers)
    if answer.status == 401:
        headers["WWW-Authenticate"] = "X-API-Key"
    return Response(
        error_body(answer.code, answer.message, request_id, answer.details),
        status_code=answer.status,
        media_type="application/json",
        headers=headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    """('body', 'transactions', 3, 'named', 'V4') -> 'transactions[3].V4'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if part in ("array", "named"):  # union tags, not fields the client wrote
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _problem(error: Any) -> str:
    if error["type"] in ("too_short", "too_long") and "actual_length" in error.get("ctx", {}):
        return (
            f"expected exactly {N_FEATURES} numbers (Time, V1..V28, Amount), "
            f"received {error['ctx']['actual_length']}"
        )
    return str(error["msg"])


def validation_details(errors: Any) -> list[dict[str, Any]]:
    details = []
    for error in errors:
        detail: dict[str, Any] = {"field": _field(tuple(error["loc"])), "problem": _problem(error)}
        if "input" in error and error["type"] != "missing":
            received = error["input"]
            detail["received"] = shown_value(received)
        details.append(detail)
    return details


# At most this many problems are itemised in an error body; the message gives the total. A batch
# of bad rows once answered a 48 MB body, every value of every row described.
MAX_ERROR_DETAILS = 25


def invalid_request(errors: Any, note: str = "") -> MalformedRequest | InvalidInput:
    """The one error for a body that does not parse (400) or does not validate (422); `note`
    ends the message of the latter."""
    errors = list(errors)
    broken = next((e for e in errors if e["type"] == "json_invalid"), None)
    if broken is not None:
        where = broken.get("ctx", {}).get("error", "")
        return MalformedRequest(f"request body is not valid JSON: {where}".strip(": "))
    details = validation_details(errors[:MAX_ERROR_DETAILS])
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    if len(errors) > len(details):
        summary += f" (and {len(errors) - len(details)} more problems; {len(errors)} in all)"
    return InvalidInput(f"invalid request: {summary}{note}", details=details)


def shown_value(value: Any) -> Any:
    """What an error body says was received: the value itself when JSON can carry it, else a
    short text. An integer beyond 64 bits or a non-finite float (both parse from JSON) would
    make the error body itself fail to encode, answering 500 instead of 422."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else _clip(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else repr(value))
    if isinstance(value, str):
        return value if len(value) <= 64 else _clip(value)
    return type(value).__name__


def _clip(text: str) -> str:
    return text if len(text) <= 64 else f"{text[:40]}... ({len(text)} characters)"


def load_failure(exc: BundleError | StoreError) -> ServiceError:
    """A model load that failed, as the HTTP error /reload answers with: the store could not
    be asked (503), or it answered with something that must not be served (502)."""
    if isinstance(exc, StoreUnavailable):
        return NotReady(f"artifact store unreachable: {exc}", code="store_unavailable")
    if isinstance(exc, NoProductionModel):
        return NotReady(str(exc), code="no_production_model")
    if isinstance(exc, ObjectNotFound):
        return UnservableModel(
            f"production names a version that is not in the store: {exc}", code="bundle_not_found"
        )
    if isinstance(exc, BundleError):
        return UnservableModel(f"bundle refused ({exc.reason}): {exc}", code=exc.reason)
    if isinstance(exc, InvalidPointer):
        return UnservableModel(str(exc), code="invalid_pointer")
    if isinstance(exc, ObjectTooLarge):
        return UnservableModel(f"store object refused: {exc}", code="object_refused")
    return UnservableModel(f"artifact store error: {exc}", code="store_error")


# What the app answers itself, in its one error shape; anything else is a bug (a logged 500).
ANSWERED_ERRORS = (
    ServiceError,
    StoreError,
    BundleError,
    RequestValidationError,
    StarletteHTTPException,
)


def as_answer(exc: BaseException) -> Answer:
    """One of `ANSWERED_ERRORS` as the client gets it."""
    if isinstance(exc, StoreError | BundleError):
        exc = load_failure(exc)
    if isinstance(exc, RequestValidationError):
        exc = invalid_request(exc.errors())
    if isinstance(exc, ServiceError):
        return Answer(status_of(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, StarletteHTTPException):
        # Starlette's own: 404, 405, a body over the limit while it is read.
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        # A 405's Allow header, for one.
        return Answer(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    raise TypeError(f"{type(exc).__name__} is not one of the answered errors") from exc


def install_error_handlers(app: FastAPI) -> None:
    async def answer(request: Request, exc: Exception) -> Response:
        return error_response(exc, request_id_of(request.scope))

    for kind in ANSWERED_ERRORS:
        app.add_exception_handler(kind, answer)
