"""DirectDispatch on a small FastAPI app of its own: which requests it takes, and the errors."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from service.api.direct import DirectRoute, include_direct_routes
from service.api.errors import install_error_handlers
from service.errors import Forbidden


def _app() -> FastAPI:
    direct = APIRouter(route_class=DirectRoute)
    plain = APIRouter()

    @direct.post("/score")
    async def score(request: Request) -> Response:
        outcome = (await request.body()).decode()
        if outcome == "forbidden":
            raise Forbidden("not this key")
        if outcome == "too-large":
            raise HTTPException(413, "too large")
        # FastAPI's request handling leaves its exit stacks in the scope; a direct call does not.
        return JSONResponse({"direct": "fastapi_inner_astack" not in request.scope})

    @plain.post("/plain")
    async def plain_route(request: Request) -> Response:
        return JSONResponse({"direct": "fastapi_inner_astack" not in request.scope})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(plain)
    include_direct_routes(app, direct)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app())


def test_a_direct_route_is_called_past_fastapis_request_handling(client: TestClient) -> None:
    assert client.post("/score", content=b"ok").json() == {"direct": True}
    assert client.post("/plain", content=b"ok").json() == {"direct": False}


def test_errors_from_a_direct_route_have_the_one_error_shape(client: TestClient) -> None:
    forbidden = client.post("/score", content=b"forbidden")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == {"code": "forbidden", "message": "not this key"}
    too_large = client.post("/score", content=b"too-large")
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"


def test_other_methods_and_paths_go_on_to_fastapi(client: TestClient) -> None:
    assert client.get("/score").status_code == 405
    # FastAPI's own answer to a trailing slash: a redirect to the route.
    assert client.post("/score/", follow_redirects=False).status_code == 307
    assert client.post("/nope").status_code == 404


def test_openapi_documents_direct_routes(client: TestClient) -> None:
    assert "post" in client.get("/openapi.json").json()["paths"]["/score"]


def test_a_direct_route_has_a_fixed_path() -> None:
    router = APIRouter(route_class=DirectRoute)

    async def by_id(request: Request) -> Response:
        return Response()

    with pytest.raises(ValueError, match="fixed path"):
        router.add_api_route("/score/{item}", by_id, methods=["POST"])


async def _direct_endpoint(request: Request) -> Response:
    return Response()


async def _require_key() -> None:
    raise Forbidden("never reached by a direct call")


def test_a_direct_route_refuses_route_dependencies() -> None:
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(ValueError, match="has dependencies"):
        router.add_api_route(
            "/score", _direct_endpoint, methods=["POST"], dependencies=[Depends(_require_key)]
        )


def test_a_direct_route_refuses_router_dependencies() -> None:
    router = APIRouter(route_class=DirectRoute, dependencies=[Depends(_require_key)])
    with pytest.raises(ValueError, match="has dependencies"):
        router.add_api_route("/score", _direct_endpoint, methods=["POST"])
    with pytest.raises(ValueError, match="cannot have dependencies"):
        include_direct_routes(FastAPI(), router)


def test_a_direct_endpoint_takes_only_the_request() -> None:
    async def with_query(request: Request, limit: int = 10) -> Response:
        return Response()

    async def with_dependency(request: Request, _: None = Depends(_require_key)) -> Response:
        return Response()

    async def without_request(limit: int = 10) -> Response:
        return Response()

    for endpoint in (with_query, with_dependency, without_request):
        with pytest.raises(ValueError, match="exactly one parameter, the Request"):
            APIRouter(route_class=DirectRoute).add_api_route("/score", endpoint, methods=["POST"])
