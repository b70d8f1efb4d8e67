"""Abuse at the edges (issue 12, "High"): against a real `python -m app serve` over TCP, with real
concurrent requests.

- Concurrent guesses cannot get more than `LOGIN_MAX_FAILURES` passwords checked per window, and
  a correct password hidden in a burst of wrong ones does not reset the count.
- A flood of logins cannot take readiness down nor exhaust the database pool: the excess is shed
  fast (429/503 with Retry-After), never a pool timeout and never a 500.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.api.auth_helpers import PASSWORD, new_email
from tests.support.server import serve

pytestmark = pytest.mark.slow

#: Per-IP limits out of the way: these tests are about the per-account limit and the pool.
NO_IP_LIMITS = {
    "RATE_LIMIT_LOGIN": "100000/minute",
    "RATE_LIMIT_REGISTER": "100000/minute",
    "RATE_LIMIT_REFRESH": "100000/minute",
}


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    # Generous: argon2 runs at nice 19, so on a machine busy with other work (a parallel test
    # run) a checked password can wait long for a core; these tests count answers, not time.
    return await client.post(
        "/api/v1/auth/login", data={"username": email, "password": password}, timeout=180
    )


async def test_a_burst_of_guesses_is_checked_at_most_max_failures_times(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, **NO_IP_LIMITS, "LOGIN_MAX_FAILURES": "10"}
    with serve(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            email = new_email()
            registered = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            # 39 wrong guesses and the right password, all at once.
            guesses = [secrets.token_urlsafe(12) for _ in range(39)]
            burst = [*guesses[:20], PASSWORD, *guesses[20:]]
            answers = await asyncio.gather(*(_login(client, email, p) for p in burst))
            statuses = Counter(a.status_code for a in answers)
            assert set(statuses) <= {200, 401, 429}, statuses
            checked = statuses[200] + statuses[401]
            assert checked <= 10, f"{checked} passwords were checked, the limit is 10: {statuses}"
            assert statuses[429] >= 30
            for answer in answers:
                if answer.status_code == 429:
                    assert int(answer.headers["Retry-After"]) > 0
            # On an account nobody signs in to, the count never resets: a burst and then
            # single guesses get exactly 10 passwords checked, and past that even the right
            # password gets the same 429 (no oracle).
            victim = new_email()
            registered = await client.post(
                "/api/v1/auth/register", json={"email": victim, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            wrong_only = await asyncio.gather(*(_login(client, victim, p) for p in guesses))
            checked = Counter(a.status_code for a in wrong_only)[401]
            for _ in range(11):  # then one at a time, until refused
                if (await _login(client, victim, "one-more-guess")).status_code == 429:
                    break
                checked += 1
            assert checked == 10, f"{checked} wrong passwords checked, the limit is 10"
            after = await _login(client, victim, PASSWORD)
            assert after.status_code == 429, after.text


async def test_concurrent_guesses_on_an_unknown_account_are_limited_the_same(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, **NO_IP_LIMITS, "LOGIN_MAX_FAILURES": "5"}
    with serve(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            known, unknown = new_email(), new_email()
            assert (
                await client.post(
                    "/api/v1/auth/register", json={"email": known, "password": PASSWORD}
                )
            ).status_code == 201
            seen = {}
            for email in (known, unknown):
                answers: list[httpx.Response] = []
                for _wave in range(10):  # two at a time: under the per-account in-flight cap
                    answers += await asyncio.gather(*(_login(client, email, "x") for _ in "ab"))
                seen[email] = Counter(a.status_code for a in answers)
                assert [a.json() for a in answers if a.status_code == 401][:1] == [
                    {"detail": "Incorrect email or password"}
                ]
            assert seen[known] == seen[unknown] == Counter({401: 5, 429: 15})


async def test_a_login_flood_keeps_readiness_and_sheds_the_excess_fast(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **server_env,
        **NO_IP_LIMITS,
        "LOGIN_MAX_FAILURES": "1000",
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT_SECONDS": "2",
    }
    with serve(env, tmp_path) as server:
        async with httpx.AsyncClient(
            base_url=server.url, limits=httpx.Limits(max_connections=200)
        ) as client:
            stop = asyncio.Event()
            readiness: list[int] = []

            async def probe() -> None:
                while not stop.is_set():
                    answer = await client.get("/health/ready", timeout=10)
                    readiness.append(answer.status_code)
                    await asyncio.sleep(0.05)

            prober = asyncio.create_task(probe())
            await asyncio.sleep(0.2)
            started = time.monotonic()
            answers = await asyncio.gather(
                *(_login(client, new_email(), "flood-password") for _ in range(100))
            )
            elapsed = time.monotonic() - started
            stop.set()
            await prober
            statuses = Counter(a.status_code for a in answers)
            assert set(statuses) <= {401, 429, 503}, statuses
            for answer in answers:
                if answer.status_code in (429, 503):
                    assert int(answer.headers["Retry-After"]) >= 1
            assert readiness, "the readiness probe ran"
            assert set(readiness) == {200}, f"readiness during the flood: {Counter(readiness)}"
            assert "database unavailable" not in server.output(), "a request hit a pool timeout"
            assert elapsed < 60
