"""PostgreSQL stopped: DB routes answer 503 within the configured timeouts (no hang, no 500);
PostgreSQL back: the next requests succeed on the same app (stale pooled connections are
detected by pre-ping and replaced)."""

from __future__ import annotations

import secrets
import time

from tests.api.auth_helpers import bearer, signed_in
from tests.faults.conftest import FaultSettings, postgres_down
from tests.support.app import running_client
from tests.support.private_services import PrivatePostgres

ME = "/api/v1/users/me"


async def test_database_outage_is_503_within_timeouts_and_recovers(
    fault_settings: FaultSettings, fault_pg: PrivatePostgres
) -> None:
    settings = fault_settings(db_connect_timeout_seconds=2.0, db_pool_timeout_seconds=2.0)
    budget = settings.db_connect_timeout_seconds + settings.db_pool_timeout_seconds + 1
    async with running_client(settings) as client:
        _, tokens = await signed_in(client)
        headers = bearer(tokens["access_token"])
        # Warm the pool so the outage hits connections the pool believes are healthy.
        for _ in range(3):
            assert (await client.get(ME, headers=headers)).status_code == 200

        with postgres_down(fault_pg):
            newcomer = {
                "email": f"down-{secrets.token_hex(4)}@example.com",
                "password": secrets.token_urlsafe(16),
            }
            attempts = [
                ("GET", ME, {"headers": headers}),
                ("POST", "/api/v1/auth/register", {"json": newcomer}),
                (
                    "POST",
                    "/api/v1/auth/login",
                    {"data": {"username": newcomer["email"], "password": newcomer["password"]}},
                ),
                ("GET", "/health/ready", {}),
                ("GET", ME, {"headers": headers}),
            ]
            for method, path, options in attempts:
                started = time.monotonic()
                response = await client.request(method, path, **options)  # type: ignore[arg-type]
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (path, response.status_code, response.text)
                assert elapsed < budget, f"{path} took {elapsed:.1f}s with PostgreSQL down"
            assert (await client.get("/health/ready")).json()["checks"]["database"] != "ok"
            assert (await client.get("/health/live")).status_code == 200

        statuses = [(await client.get(ME, headers=headers)).status_code for _ in range(20)]
        assert statuses == [200] * 20
        assert (await client.get("/health/ready")).status_code == 200
