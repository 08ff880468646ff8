"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request).

For every HTTP request: a request id (the client's `X-Request-ID` if sane, else a new one,
echoed back), the body guard (413 for bodies over the limit, refused before they are read whole;
415 for a body that is not JSON, or in a coding other than gzip; a gzip body is inflated here,
and the limit applies to it inflated), one access-log line (not for health checks), request
metrics, and a last-resort handler that turns a bug into a logged 500 with the request id.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.context import request_state
from service.api.errors import error_response
from service.errors import ServiceError, TooLarge, UnsupportedEncoding
from service.observe.logging import get_logger
from service.observe.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_CLOSED_REQUEST = 499
QUIET_PATHS = frozenset({"/health/live", "/health/ready"})
SUPPORTED_CODINGS = frozenset({b"identity", b"gzip"})
# Every error body starts with its code (service/errors.py `error_body`): read it from there, so
# the access line names it whoever answered (a route, a handler, Starlette's 404/405, a guard).
_ERROR_CODE = re.compile(rb'^\{"error":\{"code":"([A-Za-z0-9_]{1,64})"')
access_log = get_logger("service.access")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # The app's routes (the same list object, so routes added later count): a request
        # refused before routing (413, 415) is still logged under the route it was sent to.
        self.routes = routes
        # Request ids: a random per-process prefix and a counter. Unique across workers and
        # tasks for correlating logs, and a fraction of uuid4's cost (2.6 % of a worker's CPU).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = itertools.count(1)

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        incoming = headers.get(REQUEST_ID_HEADER, b"")
        request_id = incoming.decode() if _SANE_REQUEST_ID.match(incoming) else self._new_id()
        state = request_state(scope)
        state["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            elif status >= 400 and "error_code" not in state:
                found = _ERROR_CODE.match(message.get("body", b""))
                state["error_code"] = found.group(1).decode() if found else None
            await send(message)

        try:
            coding = headers.get(b"content-encoding", b"identity").strip().lower()
            refusal = self._guard(scope, headers, coding)
            if refusal is not None:
                await error_response(refusal, request_id)(scope, receive, send_with_id)
            elif coding == b"gzip":
                await self.app(scope, self._inflated(self._limited(receive)), send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except ClientDisconnect:
            # The client left before sending the body it announced: nobody to answer, and
            # not our failure. Recorded as 499 (the convention for "client closed request"),
            # or as the 408 the server answered when the body took too long
            # (service.server.draining).
            if "timed_out" in state:
                status, state["error_code"] = 408, "request_timeout"
            else:
                status, state["error_code"] = CLIENT_CLOSED_REQUEST, "client_closed_request"
        except Exception:  # noqa: BLE001 - last resort: logged with traceback, answered 500
            access_log.exception("unhandled_error", request_id=request_id, path=scope["path"])
            if not response_started:
                failure = ServiceError("internal error; quote the request_id when reporting it")
                await error_response(failure, request_id)(scope, receive, send_with_id)
        finally:
            self._record(scope, state, status, started, request_id)

    def _guard(
        self, scope: Scope, headers: dict[bytes, bytes], coding: bytes
    ) -> ServiceError | None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size > self.max_body_bytes:
                return TooLarge(
                    f"request body of {size} bytes exceeds the limit of {self.max_body_bytes} bytes"
                )
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if coding not in SUPPORTED_CODINGS:
            shown = coding.decode(errors="replace")[:64]
            return UnsupportedEncoding(
                f"content encoding must be gzip or identity (none), received {shown}"
            )
        if has_body:
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != b"application/json":
                shown = content_type.decode(errors="replace") or "none"
                return UnsupportedEncoding(
                    f"content type must be application/json, received {shown}"
                )
        return None

    def _inflated(self, receive: Receive) -> Receive:
        """A gzip body inflated as it arrives, refused once it would pass the body limit
        inflated: a few KB of gzip can inflate to gigabytes."""
        limit = self.max_body_bytes
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip's header and trailer
        body = bytearray()

        async def inflated_receive() -> Message:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                try:
                    # At most one byte past the limit: enough to know it is over.
                    body.extend(
                        inflater.decompress(message.get("body", b""), limit + 1 - len(body))
                    )
                except zlib.error as exc:
                    raise HTTPException(400, f"request body is not valid gzip: {exc}") from None
                if len(body) > limit or inflater.unconsumed_tail:
                    raise HTTPException(
                        413, f"request body exceeds the limit of {limit} bytes once decompressed"
                    )
                if not message.get("more_body", False):
                    if not inflater.eof:
                        raise HTTPException(400, "request body is not valid gzip: it is cut short")
                    return {"type": "http.request", "body": bytes(body), "more_body": False}

        return inflated_receive

    def _limited(self, receive: Receive) -> Receive:
        """Count body bytes as they arrive: a chunked body has no Content-Length to check."""
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, because FastAPI turns anything else raised while it
                    # reads the body into a 400.
                    raise HTTPException(
                        413,
                        f"request body exceeds the limit of {limit} bytes (stopped reading at "
                        f"{received})",
                    )
            return message

        return limited_receive

    def _record(
        self,
        scope: Scope,
        state: dict[str, Any],
        status: int,
        started: float,
        request_id: str,
    ) -> None:
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", None) or self._route_template(scope)
        self.metrics.observe_request(route, scope["method"], str(status), elapsed)
        if scope["path"] in QUIET_PATHS:
            return
        client = scope.get("client")
        access_log.info(
            "request",
            request_id=request_id,
            method=scope["method"],
            route=route,
            status=status,
            error_code=state.get("error_code"),
            latency_ms=round(elapsed * 1000.0, 3),
            client=client[0] if client else None,
            model_version=state.get("model_version"),
        )

    def _route_template(self, scope: Scope) -> str:
        """The template of the route a request was sent to, when routing did not run (refused
        first) or matched a mount (/docs/static). Only such requests pay for the lookup."""
        for route in _leaf_routes(self.routes):
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"


def _leaf_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes with a path template. FastAPI (0.165) keeps an included router as one entry whose
    routes sit in `original_router`; ours have no prefix, so their paths are the full ones."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _leaf_routes(included.routes)
        else:
            yield route
