"""`GET /api/v1/users/me`, password storage and the login limit."""

from __future__ import annotations

import asyncpg
import httpx
from argon2 import extract_parameters

from tests.api.auth_helpers import (
    PASSWORD,
    bearer,
    login,
    me,
    new_email,
    refresh,
    register,
    signed_in,
)
from tests.conftest import SettingsFactory
from tests.security.user_cache_helpers import me_becomes
from tests.support.app import running_client
from tests.support.services import asyncpg_dsn


async def _sql(database_url: str, query: str, *args: object) -> object:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def test_disabled_user_gets_401_promptly(
    client: httpx.AsyncClient, database_url: str
) -> None:
    email, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    assert (await me(client, tokens["access_token"])).status_code == 200
    await _sql(database_url, "UPDATE users SET is_active = false WHERE email = $1", email)
    seen = await me_becomes(client, headers, 401)
    assert seen[-1] == 401, seen
    assert set(seen) <= {200, 401}, seen
    # Login and refresh read the row itself: refused at once.
    assert (await login(client, email)).status_code == 401
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401


async def test_deleted_user_gets_401(client: httpx.AsyncClient, database_url: str) -> None:
    email, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    assert (await me(client, tokens["access_token"])).status_code == 200
    await _sql(database_url, "DELETE FROM users WHERE email = $1", email)
    seen = await me_becomes(client, headers, 401)
    assert seen[-1] == 401, seen


async def test_stored_hash_is_argon2id_at_least_owasp_minimum(
    client: httpx.AsyncClient, database_url: str
) -> None:
    email = new_email()
    await register(client, email)
    stored = await _sql(database_url, "SELECT password_hash FROM users WHERE email = $1", email)
    assert isinstance(stored, str)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    parameters = extract_parameters(stored)
    assert parameters.memory_cost >= 19456
    assert parameters.time_cost >= 2
    assert parameters.parallelism >= 1


async def test_outdated_hash_is_upgraded_on_login(
    client: httpx.AsyncClient, database_url: str
) -> None:
    from argon2 import PasswordHasher

    email = new_email()
    await register(client, email)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await _sql(database_url, "UPDATE users SET password_hash = $1 WHERE email = $2", weak, email)
    assert (await login(client, email)).status_code == 200
    stored = await _sql(database_url, "SELECT password_hash FROM users WHERE email = $1", email)
    assert isinstance(stored, str)
    assert stored != weak
    assert extract_parameters(stored).memory_cost >= 19456


async def test_failed_logins_past_the_limit_get_429(make_settings: SettingsFactory) -> None:
    # The test client is not the trusted proxy, so its X-Forwarded-For must be ignored.
    settings = make_settings(login_max_failures=3, forwarded_allow_ips="10.9.9.9")
    async with running_client(settings) as client:
        email = new_email()
        await register(client, email)
        for _ in range(3):
            assert (await login(client, email, "wrong password")).status_code == 401
        blocked = await login(client, email, PASSWORD)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        # A spoofed address (an attacker rotating X-Forwarded-For) changes nothing.
        spoofed = await client.post(
            "/api/v1/auth/login",
            data={"username": email, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert spoofed.status_code == 429
        # Unknown accounts are limited the same way, so 429 does not reveal who exists.
        ghost = new_email()
        statuses = [(await login(client, ghost, "x" * 8)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Other accounts are not affected.
        other = new_email()
        await register(client, other)
        assert (await login(client, other)).status_code == 200


async def test_failure_count_resets_after_a_success(make_settings: SettingsFactory) -> None:
    async with running_client(make_settings(login_max_failures=2)) as client:
        email = new_email()
        await register(client, email)
        assert (await login(client, email, "wrong password")).status_code == 401
        assert (await login(client, email)).status_code == 200
        assert (await login(client, email, "wrong password")).status_code == 401
        assert (await login(client, email)).status_code == 200


async def test_login_form_fields_are_required(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/login", data={"username": "a@b.example"})
    assert response.status_code == 422
    assert "a@b.example" not in response.text
