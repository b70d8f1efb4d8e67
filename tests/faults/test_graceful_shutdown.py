"""SIGTERM while requests are in flight: every request completes 2xx, the process exits 0
within the graceful timeout, and its PostgreSQL connections are closed (not left to time out).

Requests are held in flight deterministically by pausing the private Redis (`CLIENT PAUSE`),
which `/health/ready` pings, for longer than the moment the signal is sent."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import redis

from tests.faults.conftest import fault_server_env
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.server import ServerProcess, serve

IN_FLIGHT = 20
GRACEFUL_TIMEOUT_SECONDS = 10
PAUSE_SECONDS = 1.5


def app_connections(cluster: PrivatePostgres) -> int:
    # The app's engine sets application_name = 'fastapi-secrets-template' (app/db.py).
    return int(
        cluster.psql(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'fastapi-secrets-template'"
        )
    )


async def _terminate_with_requests_in_flight(server: ServerProcess, redis_url: str) -> list[int]:
    pauser = redis.Redis.from_url(redis_url)
    try:
        pauser.execute_command("CLIENT", "PAUSE", str(int(PAUSE_SECONDS * 1000)), "ALL")
    finally:
        pauser.close()
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(client.get(f"{server.url}/health/ready")) for _ in range(IN_FLIGHT)
        ]
        await asyncio.sleep(PAUSE_SECONDS / 3)
        assert not any(task.done() for task in tasks), "requests must still be in flight"
        server.process.send_signal(signal.SIGTERM)
        responses = await asyncio.gather(*tasks)
    return [response.status_code for response in responses]


async def test_sigterm_drains_in_flight_requests_and_closes_db_connections(
    fault_pg: PrivatePostgres, fault_redis: PrivateRedis, tmp_path: Path
) -> None:
    env = fault_server_env(
        fault_pg, fault_redis, GRACEFUL_TIMEOUT_SECONDS=str(GRACEFUL_TIMEOUT_SECONDS)
    )
    with serve(env, tmp_path) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{server.url}/health/ready")).status_code == 200
        assert app_connections(fault_pg) >= 1

        signalled = time.monotonic()
        statuses = await _terminate_with_requests_in_flight(server, fault_redis.url)
        exit_code = await asyncio.to_thread(server.process.wait, GRACEFUL_TIMEOUT_SECONDS + 5)
        elapsed = time.monotonic() - signalled

        assert statuses == [200] * IN_FLIGHT, server.output()
        assert exit_code == 0, server.output()
        assert elapsed < GRACEFUL_TIMEOUT_SECONDS + 2
    assert app_connections(fault_pg) == 0
