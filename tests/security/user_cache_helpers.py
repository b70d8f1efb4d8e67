"""Steps shared by the user-cache tests: SQL on a connection of the test's own, a directory
outside any app, waiting for the app's LISTEN connection, polling /users/me."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from app.config import SECRETS, Settings
from app.db import connect_dedicated, create_engine, pool_recycle_seconds
from app.secrets import SecretStore
from app.user_status import CACHE_SIZE, MAX_AGE_SECONDS, UserStatusCache
from tests.support.app import resources
from tests.support.services import asyncpg_dsn

ME = "/api/v1/users/me"


async def sql(database_url: str, *statements: tuple[Any, ...]) -> None:
    """Run statements in ONE transaction on a connection of the test's own."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with connection.transaction():
            for query, *args in statements:
                await connection.execute(query, *args)
    finally:
        await connection.close()


async def silently(database_url: str, query: str, *args: Any) -> None:
    """Change users WITHOUT a notification (trigger disabled inside the transaction)."""
    await sql(
        database_url,
        ("ALTER TABLE users DISABLE TRIGGER users_changed",),
        (query, *args),
        ("ALTER TABLE users ENABLE ALWAYS TRIGGER users_changed",),
    )


@asynccontextmanager
async def standalone_directory(
    settings: Settings,
    *,
    start: bool = False,
    size: int = CACHE_SIZE,
    max_age: float = MAX_AGE_SECONDS,
) -> AsyncIterator[UserStatusCache]:
    """A UserStatusCache on a store of its own; its LISTEN connection runs only with `start`."""
    store = await SecretStore.open(settings, SECRETS)
    engine = create_engine(settings, store)
    directory = UserStatusCache(
        engine,
        functools.partial(connect_dedicated, settings, store),
        functools.partial(pool_recycle_seconds, settings, store),
        size=size,
        max_age=max_age,
    )
    try:
        if start:
            directory.start()
        yield directory
    finally:
        await directory.aclose()
        await engine.dispose()
        await store.aclose()


def directory_of(app: FastAPI) -> UserStatusCache:
    directory: UserStatusCache = resources(app).users
    return directory


async def listener_live(directory: UserStatusCache, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not directory.is_live:
        assert time.monotonic() < deadline, "the users listener never came up"
        await asyncio.sleep(0.01)


async def me_becomes(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    expected: int,
    within: float = 2.0,
    never: int | None = None,
) -> list[int]:
    """Poll /users/me until it answers `expected` or `within` passes; every status seen (the
    user cache learns of a change by NOTIFY, within milliseconds: docs/jwt.md). A `never`
    status fails at once."""
    seen: list[int] = []
    deadline = time.monotonic() + within
    while True:
        seen.append((await client.get(ME, headers=headers)).status_code)
        assert seen[-1] != never, f"got {never}: {seen}"
        if seen[-1] == expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.01)
