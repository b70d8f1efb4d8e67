"""`add_routes`: a router's routes become the app's own and behave as `include_router` made
them (prefix, tags, router dependencies, the app's operationId rule, dependency overrides)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from starlette.routing import Route

from app.api.routing import add_routes


def _dependency() -> str:
    return "real"


def _app() -> FastAPI:
    router = APIRouter(prefix="/things", tags=["things"], dependencies=[Depends(_dependency)])

    @router.get("/{thing_id}")
    async def read_thing(thing_id: int, value: str = Depends(_dependency)) -> dict[str, object]:
        return {"id": thing_id, "value": value}

    app = FastAPI(generate_unique_id_function=lambda route: route.name)
    add_routes(app, router)
    return app


async def test_the_routes_serve_and_document_as_included_ones() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/things/7")).json() == {"id": 7, "value": "real"}
        app.dependency_overrides[_dependency] = lambda: "overridden"
        assert (await client.get("/things/7")).json() == {"id": 7, "value": "overridden"}
        assert (await client.get("/things/x")).status_code == 422
    operation = app.openapi()["paths"]["/things/{thing_id}"]["get"]
    assert operation["operationId"] == "read_thing"
    assert operation["tags"] == ["things"]


def test_only_api_routes_are_copied() -> None:
    router = APIRouter()
    router.routes.append(Route("/plain", lambda request: None))
    with pytest.raises(TypeError, match="API routes only"):
        add_routes(FastAPI(), router)
