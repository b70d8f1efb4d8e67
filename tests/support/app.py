"""An in-process app (lifespan running) and an httpx client bound to it.

httpx's ASGI transport does not run the lifespan, so `running_app` runs it and keeps the state it
yields (the app's `Resources`); `client_for` hands that state to every request, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.main import create_app
from app.resources import Resources, resources_in

_states: weakref.WeakKeyDictionary[FastAPI, dict[str, Any]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def lifespan(application: FastAPI) -> AsyncIterator[FastAPI]:
    """Run `application`'s lifespan (for an app built, and perhaps extended, by the test)."""
    async with application.router.lifespan_context(application) as state:
        _states[application] = dict(state or {})
        try:
            yield application
        finally:
            _states.pop(application, None)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with lifespan(create_app(settings)) as application:
        yield application


def resources(application: FastAPI) -> Resources:
    """The running app's resources (what its routes get through `app.api.deps`)."""
    found = resources_in(_states.get(application))
    if found is None:
        raise RuntimeError("the app is not running: use running_app()")
    return found


async def revocations_live(application: FastAPI, timeout: float = 5) -> None:
    """Wait until the app's revocation mirror follows Redis pub/sub (replica tests start here)."""
    deadline = time.monotonic() + timeout
    while not resources(application).security.revocations.mirror_is_live:
        assert time.monotonic() < deadline, "revocation channel never came up"
        await asyncio.sleep(0.02)


class _WithLifespanState:
    """Gives each request a copy of the lifespan state, like uvicorn does."""

    def __init__(self, application: FastAPI) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _states.get(self.application)
        if state is not None and scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        app: ASGIApp = self.application
        await app(scope, receive, send)


@asynccontextmanager
async def client_for(
    application: FastAPI,
    *,
    raise_app_exceptions: bool = True,
    client: tuple[str, int] = ("127.0.0.1", 123),
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client; `client` is the peer address the app sees, and
    `raise_app_exceptions=False` shows an unhandled error as the 500 a real client gets."""
    transport = asgi_transport(
        application, raise_app_exceptions=raise_app_exceptions, client=client
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def asgi_transport(
    application: FastAPI,
    *,
    raise_app_exceptions: bool = True,
    client: tuple[str, int] = ("127.0.0.1", 123),
) -> httpx.ASGITransport:
    """The transport of `client_for`, for an httpx client built by other code (a generated API
    client): requests reach the running app with its lifespan state."""
    return httpx.ASGITransport(
        app=_WithLifespanState(application),
        raise_app_exceptions=raise_app_exceptions,
        client=client,
    )


@asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as application, client_for(application) as http:
        yield http
