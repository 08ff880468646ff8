"""The scoring endpoints, called without FastAPI's per-request machinery.

Before a FastAPI endpoint runs, a request passes an exception middleware, an exit-stack
middleware, a scan of the routes, two more exit stacks and dependency solving (which parses
cookies and the query string whatever the endpoint declares). For `/predict` that was more
CPU than the model call (docs/performance.md). A `DirectRoute` is declared, matched and
documented like any FastAPI route, but `DirectDispatch`, an ASGI layer in front of FastAPI's
router, calls its endpoint with the `Request` at once. Such an endpoint takes only the request,
parses its own body and checks its own key. Other methods and paths go on to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.context import request_id_of
from service.errors import ANSWERED_ERRORS, as_answer, error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint takes only the `Request`; `DirectDispatch` calls it directly."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.param_convertors:
            raise ValueError(f"a direct route has a fixed path, not {path!r}")


class DirectDispatch:
    def __init__(self, app: ASGIApp, *, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self._routes = {
            (method, route.path): route
            for route in routes
            if isinstance(route, DirectRoute)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self._routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)  # FastAPI, which also answers 404 and 405
            return
        scope["route"] = route  # as FastAPI's router sets it: metrics label by route
        endpoint: Endpoint = route.endpoint
        try:
            response = await endpoint(Request(scope, receive, send))
        except ANSWERED_ERRORS as exc:  # as FastAPI's handlers would answer them
            response = error_response(as_answer(exc), request_id_of(scope))
        await response(scope, receive, send)
