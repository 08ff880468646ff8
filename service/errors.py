"""What can go wrong, in the service's own words: no HTTP here (as KServe's `errors.py`).

The data plane, registry and auth raise these; `service.api.errors` is the one place that
turns them, and the store's and bundle's own errors, into HTTP answers. `code` is the stable,
machine-readable name a client sees in the error body; `details` name the fields at fault.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A failure the service did not plan for: the client sees only a request id to quote."""

    code = "internal_error"

    def __init__(
        self, message: str, *, details: list[dict[str, Any]] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code


class MalformedRequest(ServiceError):
    """The body cannot be read at all: not JSON, or JSON too deep or too large a number."""

    code = "bad_request"


class Unauthenticated(ServiceError):
    """No API key, or one the service does not know."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """A known API key without the scope the request needs."""

    code = "forbidden"


class UnsupportedByModel(ServiceError):
    """The request is fine, but the live model cannot do what it asks (explain, for one)."""

    code = "conflict"


class TooLarge(ServiceError):
    """More rows or bytes than the service's limits allow."""

    code = "payload_too_large"


class UnsupportedEncoding(ServiceError):
    """A content coding the service does not read (it reads identity and gzip)."""

    code = "unsupported_media_type"


class InvalidInput(ServiceError):
    """The body reads, but does not fit the contract; `details` says where."""

    code = "invalid_input"


class UnservableModel(ServiceError):
    """The store answered, but with something that must not be served (missing or bad bundle)."""

    code = "bad_bundle"


class NotReady(ServiceError):
    """No verified model is loaded, or the store cannot be reached to load one."""

    code = "not_ready"
