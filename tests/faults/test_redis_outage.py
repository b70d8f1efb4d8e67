"""Redis stopped: readiness says so quickly, liveness does not care, nothing is a 500;
Redis back: the same app recovers on its own."""

from __future__ import annotations

import time

import httpx

from tests.faults.conftest import redis_down, wait_for_status
from tests.support.private_services import PrivateRedis


async def test_redis_outage_is_503_on_ready_within_3s_and_recovers(
    fault_client: httpx.AsyncClient, fault_redis: PrivateRedis
) -> None:
    assert (await fault_client.get("/health/ready")).status_code == 200

    with redis_down(fault_redis):
        started = time.monotonic()
        ready = await fault_client.get("/health/ready")
        elapsed = time.monotonic() - started
        live = await fault_client.get("/health/live")

        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] != "ok"
        assert ready.json()["checks"]["database"] == "ok"
        assert elapsed < 3, f"readiness took {elapsed:.1f}s with Redis down"
        assert live.status_code == 200

    recovered = await wait_for_status(fault_client, "/health/ready", 200, within=10)
    assert recovered.status_code == 200, recovered.text
    for _ in range(10):
        assert (await fault_client.get("/health/ready")).status_code == 200
