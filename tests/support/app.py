"""An in-process app (lifespan running) and an httpx client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def client_for(
    application: FastAPI,
    *,
    raise_app_exceptions: bool = True,
    client: tuple[str, int] = ("127.0.0.1", 123),
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client; `client` is the peer address the app sees, and
    `raise_app_exceptions=False` shows an unhandled error as the 500 a real client gets."""
    transport = httpx.ASGITransport(
        app=application, raise_app_exceptions=raise_app_exceptions, client=client
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as application, client_for(application) as http:
        yield http
