"""Every response carries X-Request-ID: the caller's when it is a safe token, else a new one,
including answers produced outside the routes (404, 413, unhandled 500)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from app.api.headers import HSTS, NOSNIFF, security_headers
from app.main import create_app
from app.observability.context import new_request_id
from app.observability.middleware import RequestObservabilityMiddleware
from app.secrets.redaction import register_secret_source
from tests.conftest import SettingsFactory
from tests.support.app import client_for, lifespan

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def boom_client(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(make_settings(max_body_bytes=64))

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    async with (
        lifespan(app),
        client_for(app, raise_app_exceptions=False) as client,
    ):
        yield client


async def test_a_safe_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "req_1.2-3"})
    assert response.headers["x-request-id"] == "req_1.2-3"


async def test_a_request_id_holding_a_secret_value_is_replaced(client: httpx.AsyncClient) -> None:
    # The id is written on every log line of the request: a loaded secret must not ride on it.
    secret = "Kq3" * 12
    unregister = register_secret_source(lambda: [secret])
    try:
        response = await client.get("/health/live", headers={"X-Request-ID": secret})
    finally:
        unregister()
    assert secret not in response.headers["x-request-id"]
    assert GENERATED.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    "unsafe",
    [
        "has space",
        'quote"d',
        "x" * 129,
        "semi;colon",
        "new%0aline",
        "ünïcode",
        "",
    ],
)
async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient, unsafe: str) -> None:
    response = await client.get("/health/live", headers=[(b"x-request-id", unsafe.encode("utf-8"))])
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_an_id_is_generated_per_request(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health/live")).headers["x-request-id"]
    second = (await client.get("/health/live")).headers["x-request-id"]
    assert GENERATED.fullmatch(first)
    assert GENERATED.fullmatch(second)
    assert first != second


async def test_answers_outside_routes_carry_the_id(boom_client: httpx.AsyncClient) -> None:
    missing = await boom_client.get("/nope", headers={"X-Request-ID": "r404"})
    too_big = await boom_client.post(
        "/health/live", content=b"x" * 1000, headers={"X-Request-ID": "r413"}
    )
    crashed = await boom_client.get("/boom", headers={"X-Request-ID": "r500"})
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "r404")
    assert (too_big.status_code, too_big.headers["x-request-id"]) == (413, "r413")
    assert (crashed.status_code, crashed.headers["x-request-id"]) == (500, "r500")
    assert crashed.json() == {"detail": "Internal server error"}


def test_generated_ids_stay_unique_in_a_forked_worker() -> None:
    # `WORKERS=n` forks: each worker draws its own prefix, so two workers never share an id.
    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert GENERATED.fullmatch(parent)
    assert GENERATED.fullmatch(child)
    assert parent[:16] != child[:16]
    assert new_request_id()[:16] == parent[:16]  # the parent keeps its own


async def test_the_edge_adds_security_headers_once_and_replaces_an_app_set_request_id() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"X-Request-ID", b"spoofed"), (b"X-Content-Type-Options", b"custom")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    edge = RequestObservabilityMiddleware(app, default_headers=security_headers)
    for scheme, expected in (("http", [NOSNIFF[0]]), ("https", [NOSNIFF[0], HSTS[0]])):
        sent: list[Message] = []

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "scheme": scheme, "method": "GET", "path": "/", "headers": []}
        await edge(scope, receive, send)
        headers = sent[0]["headers"]
        names = [name.lower() for name, _ in headers]
        assert names.count(b"x-request-id") == 1
        assert GENERATED.fullmatch(dict(headers)[b"x-request-id"].decode())
        # The app's own X-Content-Type-Options is kept, not doubled; HSTS only over HTTPS.
        assert names.count(b"x-content-type-options") == 1
        assert (b"X-Content-Type-Options", b"custom") in headers
        assert (HSTS in headers) == (HSTS[0] in expected)
