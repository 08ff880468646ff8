"""One error base class carrying its HTTP status, and one JSON shape for every error:

{"error": {"code": "...", "message": "...", "details": [{"field", "problem", "received"}]},
 "request_id": "..."}
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml.runtime.bundle import BundleError
from ml.runtime.schema import FEATURE_NAMES
from ml.runtime.store import (
    InvalidPointer,
    NoProductionModel,
    ObjectNotFound,
    ObjectTooLarge,
    StoreError,
    StoreUnavailable,
)
from service.context import request_id_of

N_FEATURES = len(FEATURE_NAMES)


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, details: list[dict[str, Any]] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = {}
        if code is not None:
            self.code = code


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class Conflict(ServiceError):
    """The request is fine, but the live model cannot do what it asks (explain, for one)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"


class BadGateway(ServiceError):
    """The store answered, but with something we cannot serve (missing or bad bundle)."""

    status_code = 502
    code = "bad_bundle"


class NotReady(ServiceError):
    status_code = 503
    code = "not_ready"


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error, "request_id": request_id})


def error_response(exc: ServiceError, request_id: str | None) -> Response:
    headers = dict(exc.headers)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "X-API-Key"
    return Response(
        error_body(exc.code, exc.message, request_id, exc.details),
        status_code=exc.status_code,
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


def invalid_request(errors: Any, note: str = "") -> ServiceError:
    """The one error for a body that does not parse (400) or does not validate (422); `note`
    ends the message of the latter."""
    errors = list(errors)
    broken = next((e for e in errors if e["type"] == "json_invalid"), None)
    if broken is not None:
        where = broken.get("ctx", {}).get("error", "")
        return BadRequest(f"request body is not valid JSON: {where}".strip(": "))
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
        return BadGateway(
            f"production names a version that is not in the store: {exc}", code="bundle_not_found"
        )
    if isinstance(exc, BundleError):
        return BadGateway(f"bundle refused ({exc.reason}): {exc}", code=exc.reason)
    if isinstance(exc, InvalidPointer):
        return BadGateway(str(exc), code="invalid_pointer")
    if isinstance(exc, ObjectTooLarge):
        return BadGateway(f"store object refused: {exc}", code="object_refused")
    return BadGateway(f"artifact store error: {exc}", code="store_error")


# What the app answers itself, in its one error shape; anything else is a bug (a logged 500).
ANSWERED_ERRORS = (ServiceError, RequestValidationError, StarletteHTTPException)


def as_answer(exc: Exception) -> ServiceError:
    """One of `ANSWERED_ERRORS` as the `ServiceError` the client gets."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, RequestValidationError):
        return invalid_request(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        # Starlette's own: 404, 405, a body over the limit while it is read.
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        error = ServiceError(str(exc.detail), code=code)
        error.status_code = exc.status_code
        error.headers = dict(exc.headers or {})  # a 405's Allow, for one
        return error
    raise TypeError(f"{type(exc).__name__} is not one of the answered errors") from exc


def install_error_handlers(app: FastAPI) -> None:
    async def answer(request: Request, exc: Exception) -> Response:
        return error_response(as_answer(exc), request_id_of(request.scope))

    for kind in ANSWERED_ERRORS:
        app.add_exception_handler(kind, answer)
