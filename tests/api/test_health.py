"""`/health/live` never touches dependencies; `/health/ready` checks PostgreSQL and Redis."""

from __future__ import annotations

import time

import httpx

from tests.conftest import SettingsFactory
from tests.support.app import running_client
from tests.support.server import free_port


async def test_live_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_every_check_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_ready_names_redis_when_it_is_unreachable(make_settings: SettingsFactory) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with running_client(make_settings(redis_url=closed)) as client:
        started = time.monotonic()
        ready = await client.get("/health/ready")
        elapsed = time.monotonic() - started
        live = await client.get("/health/live")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] != "ok"
    assert body["checks"]["redis"] != "ok"
    assert body["checks"]["database"] == "ok"
    assert elapsed < 5, "readiness must answer within its 2 s check budget (+ margin)"
    assert live.status_code == 200


async def test_ready_names_database_when_it_is_unreachable(make_settings: SettingsFactory) -> None:
    closed = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nope"
    async with running_client(make_settings(database_url=closed)) as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "error", "redis": "ok"}
    assert live.status_code == 200
