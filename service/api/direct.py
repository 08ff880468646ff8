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

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.context import request_id_of
from service.api.errors import ANSWERED_ERRORS, error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint takes only the `Request`; `DirectDispatch` calls it directly.

    It refuses at declaration what a direct call would silently skip: dependencies (of the
    route or its router: an auth dependency there would never run), path parameters, and
    endpoint parameters other than the request. Include such a router with
    `include_direct_routes`, which takes no dependencies either.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        name = getattr(endpoint, "__name__", repr(endpoint))
        if self.param_convertors:
            raise ValueError(f"a direct route has a fixed path, not {path!r}")
        if self.dependencies:
            raise ValueError(
                f"direct route {path!r} has dependencies, which a direct call would not run; "
                "check keys and the like inside the endpoint"
            )
        dependant = self.dependant
        declared = [
            *dependant.path_params,
            *dependant.query_params,
            *dependant.header_params,
            *dependant.cookie_params,
            *dependant.body_params,
        ]
        if declared or dependant.dependencies or dependant.request_param_name is None:
            extra = [p.name for p in declared] + [
                d.name or "dependency" for d in dependant.dependencies
            ]
            raise ValueError(
                f"direct endpoint {name} must take exactly one parameter, the Request; "
                f"it also declares {extra or 'no Request'}"
            )


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
            response = error_response(exc, request_id_of(scope))
        await response(scope, receive, send)


def include_direct_routes(app: FastAPI, router: APIRouter) -> None:
    """Document `router`'s direct routes in the app and dispatch them directly.

    Deliberately no `dependencies` argument: `app.include_router(router, dependencies=...)`
    would attach dependencies that a direct call never runs. Call this before the middleware
    that must wrap direct routes too (request ids, guards, access log) is added.
    """
    if router.dependencies:
        raise ValueError("a router of direct routes cannot have dependencies")
    app.include_router(router)
    app.add_middleware(DirectDispatch, routes=router.routes)
