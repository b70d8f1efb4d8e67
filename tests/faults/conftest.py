"""Fault tests run against a PRIVATE PostgreSQL cluster and a PRIVATE redis-server, started once
for this package, so stopping them never disturbs the shared services or other test runs.

Every test that stops a service starts it again (the `outage` helpers), so tests stay independent.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.support.app import running_client
from tests.support.private_services import PrivatePostgres, PrivateRedis, private_postgres
from tests.support.server import base_env

ROOT = Path(__file__).resolve().parents[2]
APP_DATABASE = "app"


@pytest.fixture(scope="session")
def fault_pg() -> Iterator[PrivatePostgres]:
    """A private cluster with the `app` database migrated to head."""
    with private_postgres() as cluster:
        cluster.psql(f'CREATE DATABASE "{APP_DATABASE}"')
        from alembic import command
        from alembic.config import Config

        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["settings"] = Settings(
            _env_file=None,
            app_env="test",
            database_url=cluster.url(database=APP_DATABASE),
            database_password=cluster.superuser_password,
            jwt_keys=secrets.token_urlsafe(48),
            secrets_dir="/nonexistent",
        )
        command.upgrade(config, "head")
        yield cluster


@pytest.fixture(scope="session")
def fault_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pg_is_running(cluster: PrivatePostgres) -> bool:
    result = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", str(cluster.port), "-q"],
        check=False,
        capture_output=True,
    )
    return result.returncode == 0


@pytest.fixture(autouse=True)
def _services_back_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test did to the private services, the next one finds them running."""
    yield
    if "fault_redis" in request.fixturenames:
        redis_server: PrivateRedis = request.getfixturevalue("fault_redis")
        if redis_server.process is None:
            redis_server.start()
    if "fault_pg" in request.fixturenames:
        cluster: PrivatePostgres = request.getfixturevalue("fault_pg")
        if not pg_is_running(cluster):
            cluster.start()


@contextmanager
def postgres_down(cluster: PrivatePostgres) -> Iterator[None]:
    cluster.stop("fast")
    try:
        yield
    finally:
        cluster.start()


@contextmanager
def redis_down(server: PrivateRedis) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()


FaultSettings = Callable[..., Settings]


@pytest.fixture
def fault_settings(
    fault_pg: PrivatePostgres, fault_redis: PrivateRedis, tmp_path: Path
) -> FaultSettings:
    """Settings on the private services with short timeouts; keyword overrides win."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "database_url": fault_pg.url(database=APP_DATABASE),
            "database_password": fault_pg.superuser_password,
            "redis_url": fault_redis.url,
            "redis_key_prefix": f"fault:{secrets.token_hex(5)}:",
            "jwt_keys": secrets.token_urlsafe(48),
            "secrets_dir": str(tmp_path / "no-secrets-dir"),
            "db_connect_timeout_seconds": 2.0,
            "db_pool_timeout_seconds": 2.0,
            "db_statement_timeout_seconds": 10.0,
            "redis_socket_timeout_seconds": 1.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


def fault_server_env(
    cluster: PrivatePostgres, redis_server: PrivateRedis, **overrides: str
) -> dict[str, str]:
    """Environment for `python -m app serve` on the private services."""
    return base_env(
        DATABASE_URL=cluster.url(database=APP_DATABASE),
        DATABASE_PASSWORD=cluster.superuser_password,
        REDIS_URL=redis_server.url,
        REDIS_KEY_PREFIX=f"fault:{secrets.token_hex(5)}:",
        JWT_KEYS=secrets.token_urlsafe(48),
        LOG_LEVEL="warning",
        **overrides,
    )


@pytest.fixture
async def fault_client(fault_settings: FaultSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(fault_settings()) as client:
        yield client


async def wait_for_status(
    client: httpx.AsyncClient,
    path: str,
    status: int,
    within: float,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Poll until `path` answers `status`; fail with the last answer after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(path, headers=headers)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)
