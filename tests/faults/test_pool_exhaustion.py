"""Pool exhaustion: while a lock holds every pooled connection, the requests that cannot get one
are answered 503 after `pool_timeout` (not queued forever, not a 500); once the lock is released
the held requests finish and the pool serves normally again."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.api.auth_helpers import bearer, signed_in
from tests.faults.conftest import APP_DATABASE, FaultSettings
from tests.support.app import running_client
from tests.support.private_services import PrivatePostgres

ME = "/api/v1/users/me"


async def _timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[int, float]:
    started = time.monotonic()
    response = await client.get(path, headers=headers)
    return response.status_code, time.monotonic() - started


Timed = asyncio.Task[tuple[int, float]]


async def _wait_for(tasks: list[Timed], count: int, within: float) -> None:
    """Wait until `count` tasks finished or `within` seconds passed."""
    deadline = time.monotonic() + within
    pending = set(tasks)
    while len(tasks) - len(pending) < count and time.monotonic() < deadline:
        _, pending = await asyncio.wait(
            pending, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
        )


async def test_excess_requests_get_503_within_pool_timeout_and_pool_recovers(
    fault_settings: FaultSettings, fault_pg: PrivatePostgres
) -> None:
    settings = fault_settings(db_pool_size=2, db_max_overflow=1, db_pool_timeout_seconds=1.0)
    capacity = settings.db_pool_size + settings.db_max_overflow
    excess = 3
    dsn = fault_pg.admin_dsn.rsplit("/", 1)[0] + f"/{APP_DATABASE}"
    async with running_client(settings) as client:
        # One user per request: the user cache coalesces concurrent reads of ONE user into one
        # query, so only distinct users need a connection each.
        users = [bearer((await signed_in(client))[1]["access_token"]) for _ in range(6)]
        headers = users[0]
        locker = await asyncpg.connect(dsn)
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")

            assert capacity + excess <= len(users)
            tasks = [
                asyncio.create_task(_timed_get(client, ME, users[n]))
                for n in range(capacity + excess)
            ]
            await _wait_for(tasks, count=excess, within=settings.db_pool_timeout_seconds + 5)
            await asyncio.sleep(0.3)  # anything else finishing now would be a wrong answer
            done, pending = {t for t in tasks if t.done()}, {t for t in tasks if not t.done()}
            # Only the requests that never got a connection can have finished.
            finished = [task.result() for task in done]
            assert len(finished) == excess, finished
            for status, elapsed in finished:
                assert status == 503
                assert elapsed < settings.db_pool_timeout_seconds + 1, elapsed
            assert len(pending) == capacity
        finally:
            await transaction.rollback()
            await locker.close()

        held = await asyncio.gather(*pending)
        assert [status for status, _ in held] == [200] * capacity

        # Recovered: a burst the pool can hold, then steady traffic.
        burst = await asyncio.gather(*(client.get(ME, headers=headers) for _ in range(capacity)))
        assert [response.status_code for response in burst] == [200] * capacity
        statuses = [(await client.get(ME, headers=headers)).status_code for _ in range(20)]
        assert statuses == [200] * 20
