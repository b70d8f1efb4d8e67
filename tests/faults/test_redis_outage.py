"""Redis stopped: readiness says so quickly, liveness does not care, protected endpoints fail
closed with 503 (a revoked token is never accepted, nothing is a 500); Redis back: the same app
recovers on its own."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.api.auth_helpers import bearer, login, signed_in
from tests.faults.conftest import redis_down, wait_for_status
from tests.support.private_services import PrivateRedis

ME = "/api/v1/users/me"


async def test_redis_outage_is_503_on_ready_within_3s_and_recovers(
    fault_client: httpx.AsyncClient, fault_redis: PrivateRedis
) -> None:
    # Several pooled connections, all of which the restart below will kill.
    warm = await asyncio.gather(*(fault_client.get("/health/ready") for _ in range(5)))
    assert [response.status_code for response in warm] == [200] * 5

    with redis_down(fault_redis):
        started = time.monotonic()
        ready = await fault_client.get("/health/ready")
        elapsed = time.monotonic() - started
        live = await fault_client.get("/health/live")

        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] != "ok"
        assert ready.json()["checks"]["database"] == "ok"
        assert elapsed < 5, f"readiness took {elapsed:.1f}s with Redis down"  # 2 s check + margin
        assert live.status_code == 200

    # Redis is accepting connections again: stale pooled connections are replaced on use,
    # so not even the first requests fail.
    burst = await asyncio.gather(*(fault_client.get("/health/ready") for _ in range(5)))
    assert [response.status_code for response in burst] == [200] * 5
    for _ in range(10):
        assert (await fault_client.get("/health/ready")).status_code == 200


async def test_redis_outage_fails_closed_on_protected_endpoints_and_recovers(
    fault_client: httpx.AsyncClient, fault_redis: PrivateRedis
) -> None:
    email, tokens = await signed_in(fault_client)
    second = await login(fault_client, email)
    assert second.status_code == 200, second.text
    valid, revoked = bearer(tokens["access_token"]), bearer(second.json()["access_token"])
    assert (await fault_client.post("/api/v1/auth/logout", headers=revoked)).status_code == 204
    assert (await fault_client.get(ME, headers=valid)).status_code == 200
    assert (await fault_client.get(ME, headers=revoked)).status_code == 401

    with redis_down(fault_redis):
        # The valid token may still pass while the revocation mirror is provably fresh; it
        # must turn into 503 soon after. The revoked one is never accepted at any point.
        deadline = time.monotonic() + 8
        valid_status = 200
        while time.monotonic() < deadline:
            valid_status = (await fault_client.get(ME, headers=valid)).status_code
            revoked_status = (await fault_client.get(ME, headers=revoked)).status_code
            assert valid_status in {200, 503}
            assert revoked_status in {401, 503}
            if valid_status == 503:
                break
            await asyncio.sleep(0.2)
        assert valid_status == 503, "protected endpoint kept answering without Redis"
        assert (await fault_client.get(ME, headers=revoked)).status_code in {401, 503}

        logout = await fault_client.post("/api/v1/auth/logout", headers=valid)
        assert logout.status_code == 503
        attempt = await login(fault_client, email)
        assert attempt.status_code == 503
        assert (await fault_client.get("/health/live")).status_code == 200

    recovered = await wait_for_status(fault_client, ME, 200, within=10, headers=valid)
    assert recovered.status_code == 200, recovered.text
    for _ in range(10):
        assert (await fault_client.get(ME, headers=valid)).status_code == 200
        assert (await fault_client.get(ME, headers=revoked)).status_code == 401
