"""Fixtures shared by every test: a throwaway database on the real PostgreSQL (migrated with
Alembic), a private Redis key prefix, settings pointing at both, and an in-process app/client."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.config import Settings
from tests.support.app import client_for, running_app
from tests.support.services import (
    TEST_REDIS_URL,
    create_database,
    drop_database,
    unique_prefix,
)

SettingsFactory = Callable[..., Settings]

#: Every test client comes from one address, so the per-IP limits are set out of the way;
#: the tests of the limits themselves set their own (tests/abuse).
GENEROUS_RATE_LIMITS = {
    "rate_limit_login": "100000/minute",
    "rate_limit_register": "100000/minute",
    "rate_limit_refresh": "100000/minute",
    "rate_limit_password_reset": "100000/minute",
}


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh database for this test run, migrated to head, dropped at the end."""
    from alembic import command
    from alembic.config import Config

    url = await create_database()
    config = Config(str(Path(__file__).resolve().parents[1] / "alembic.ini"))
    config.attributes["settings"] = Settings(
        _env_file=None,
        app_env="test",
        database_url=url,
        jwt_keys=secrets.token_urlsafe(48),
        secrets_dir="/nonexistent",
    )
    # env.py calls asyncio.run(), which cannot nest in this loop: run Alembic in a thread.
    await asyncio.to_thread(command.upgrade, config, "head")
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = unique_prefix()
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def data_keys() -> str:
    """One data-key ring for the run: replicas of one test share it, as real ones do (a ring
    generated per app would not open what another app sealed)."""
    from app.keys.data import new_dev_data_ring

    return new_dev_data_ring()


@pytest.fixture
def make_settings(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    jwt_secret: str,
    data_keys: str,
    tmp_path: Path,
) -> SettingsFactory:
    """Settings for the test services; keyword overrides win. Never reads a `.env`."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            "redis_key_prefix": redis_prefix,
            "jwt_keys": jwt_secret,
            "data_keys": data_keys,
            "secrets_dir": str(tmp_path / "no-secrets-dir"),
            "secrets_refresh_seconds": 1,
            **GENEROUS_RATE_LIMITS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test that touched the database leaves no rows behind."""
    yield
    if "database_url" not in request.fixturenames:
        return
    import asyncpg

    from tests.support.services import asyncpg_dsn

    url = request.getfixturevalue("database_url")
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server_env(
    database_url: str, redis_url: str, redis_prefix: str, jwt_secret: str, data_keys: str
) -> dict[str, str]:
    """Environment for a `python -m app serve` process on the test services."""
    from tests.support.server import base_env

    return base_env(
        **{name.upper(): rate for name, rate in GENEROUS_RATE_LIMITS.items()},
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        JWT_KEYS=jwt_secret,
        DATA_KEYS=data_keys,
    )
