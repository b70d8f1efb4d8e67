"""The per-replica user cache behind `CurrentUser` (app/security/users_cache.py).

A disable or delete made directly in SQL reaches the cache through the trigger's NOTIFY within
milliseconds; entries cached before a NOTIFY are never served after it; while the LISTEN
connection is down nothing cached is served and every lookup reads the database.

"Silent" changes below disable the trigger inside the writing transaction (other sessions never
see it disabled): they show that an answer came from the cache, which only a NOTIFY, the
listener's loss or the 30 s backstop may end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.api.auth_helpers import bearer, signed_in
from tests.conftest import SettingsFactory
from tests.security.user_cache_helpers import (
    ME,
    directory_of,
    listener_live,
    me_becomes,
    silently,
    sql,
    standalone_directory,
)
from tests.support.app import client_for, running_app


async def _insert_user(database_url: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    await sql(
        database_url,
        (
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')",
            user_id,
            f"{user_id.hex}@example.com",
        ),
    )
    return user_id


@pytest.fixture
async def live_app(make_settings: SettingsFactory) -> AsyncIterator[FastAPI]:
    async with running_app(make_settings()) as application:
        await listener_live(directory_of(application))
        yield application


async def disabled_behind_the_cache(
    client: httpx.AsyncClient, database_url: str
) -> tuple[dict[str, str], str, str]:
    """A signed-in user whose status the cache holds, then disabled WITHOUT a notification:
    the cached status is still served (this is the cache at work). Returns (headers, email, id)."""
    email, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    me = await client.get(ME, headers=headers)
    assert me.status_code == 200
    await silently(database_url, "UPDATE users SET is_active = false WHERE email = $1", email)
    assert (await client.get(ME, headers=headers)).status_code == 200
    return headers, email, me.json()["id"]


async def test_cache_answers_until_a_notify_and_never_after_it(
    live_app: FastAPI, database_url: str
) -> None:
    async with client_for(live_app) as client:
        headers, email, _ = await disabled_behind_the_cache(client, database_url)
        # Any notified change to the row ends the cached entry.
        await sql(database_url, ("UPDATE users SET email = email WHERE email = $1", email))
        seen = await me_becomes(client, headers, 401)
        assert seen[-1] == 401, seen
        assert [(await client.get(ME, headers=headers)).status_code for _ in range(5)] == [401] * 5


async def test_a_replica_that_changed_a_user_forgets_it_without_waiting_for_the_notify(
    live_app: FastAPI, database_url: str
) -> None:
    # The NOTIFY lands some milliseconds after COMMIT returns; the writer's own next request
    # must not fall in that gap. The trigger is silenced here, so only `forget` can help.
    async with client_for(live_app) as client:
        headers, _, user_id = await disabled_behind_the_cache(client, database_url)
        directory_of(live_app).forget(user_id)
        assert (await client.get(ME, headers=headers)).status_code == 401


async def test_disable_enable_and_delete_reach_the_cache_within_milliseconds(
    live_app: FastAPI, database_url: str
) -> None:
    async with client_for(live_app) as client:
        email, tokens = await signed_in(client)
        headers = bearer(tokens["access_token"])
        assert (await client.get(ME, headers=headers)).status_code == 200
        await sql(database_url, ("UPDATE users SET is_active = false WHERE email = $1", email))
        assert (await me_becomes(client, headers, 401))[-1] == 401
        await sql(database_url, ("UPDATE users SET is_active = true WHERE email = $1", email))
        assert (await me_becomes(client, headers, 200))[-1] == 200
        await sql(database_url, ("DELETE FROM users WHERE email = $1", email))
        assert (await me_becomes(client, headers, 401))[-1] == 401


async def test_truncate_empties_the_cache(live_app: FastAPI, database_url: str) -> None:
    async with client_for(live_app) as client:
        _, tokens = await signed_in(client)
        headers = bearer(tokens["access_token"])
        assert (await client.get(ME, headers=headers)).status_code == 200
        # CASCADE: items and account_tokens reference users (migration 0003).
        await sql(database_url, ("TRUNCATE users CASCADE",))
        assert (await me_becomes(client, headers, 401))[-1] == 401


async def test_losing_the_listener_drops_every_cached_entry(
    live_app: FastAPI, database_url: str
) -> None:
    directory = directory_of(live_app)
    async with client_for(live_app) as client:
        headers, _, _ = await disabled_behind_the_cache(client, database_url)

        pid, generation = directory.listener_pid, directory.generation
        assert pid is not None
        await sql(database_url, ("SELECT pg_terminate_backend($1)", pid))
        deadline = time.monotonic() + 5
        while directory.generation == generation:  # the app noticed the loss
            assert time.monotonic() < deadline, "listener loss not noticed"
            await asyncio.sleep(0.01)
        # Whether or not the listener is back yet, nothing cached before the loss is served.
        assert (await client.get(ME, headers=headers)).status_code == 401

        await listener_live(directory)  # it reconnects by itself
        assert directory.listener_pid not in (None, pid)


async def test_without_the_listener_every_lookup_reads_the_database(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings()
    async with standalone_directory(settings) as directory:  # never started: no LISTEN connection
        user_id = await _insert_user(database_url)
        found = await directory.lookup(str(user_id))
        assert found is not None
        assert (found.id, found.email, found.is_active) == (
            user_id,
            f"{user_id.hex}@example.com",
            True,
        )
        await silently(database_url, "UPDATE users SET is_active = false WHERE id = $1", user_id)
        disabled = await directory.lookup(str(user_id))
        assert disabled is not None
        assert not disabled.is_active
        await silently(database_url, "DELETE FROM users WHERE id = $1", user_id)
        assert await directory.lookup(str(user_id)) is None
        assert len(directory) == 0
        assert await directory.lookup("not-a-uuid") is None


async def test_a_pooled_connection_dropped_by_the_server_is_replaced_transparently(
    make_settings: SettingsFactory, database_url: str
) -> None:
    """No pre-ping on the lookup pool: a dead connection is found by the query and the read is
    retried once on a fresh connection (what pre-ping would have done, one round trip cheaper)."""
    settings = make_settings(db_pool_size=2)
    async with standalone_directory(settings) as directory:
        user_id = await _insert_user(database_url)
        assert await directory.lookup(str(user_id)) is not None  # the pool now holds one
        await sql(
            database_url,
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = 'fastapi-secrets-template'",
            ),
        )
        for _ in range(3):
            assert await directory.lookup(str(user_id)) is not None


async def test_entries_are_bounded_and_expire_even_without_a_notify(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings()
    async with standalone_directory(settings, size=2, max_age=0.3, start=True) as directory:
        await listener_live(directory)
        users = [await _insert_user(database_url) for _ in range(3)]
        for user_id in users:
            assert await directory.lookup(str(user_id)) is not None
        assert len(directory) == 2  # least recently used first out

        await silently(database_url, "UPDATE users SET is_active = false WHERE id = $1", users[2])
        cached = await directory.lookup(str(users[2]))
        assert cached is not None
        assert cached.is_active  # served from the cache: nothing notified it
        await asyncio.sleep(0.4)
        expired = await directory.lookup(str(users[2]))
        assert expired is not None
        assert not expired.is_active  # the backstop: read again once older than max_age


async def test_the_listener_connection_is_recycled_like_pooled_ones(
    make_settings: SettingsFactory, database_url: str
) -> None:
    """Leased credentials (Vault) must not outlive DB_POOL_RECYCLE_SECONDS on any connection."""
    settings = make_settings(db_pool_recycle_seconds=1)
    async with standalone_directory(settings, start=True) as directory:
        await listener_live(directory)
        first = directory.listener_pid
        deadline = time.monotonic() + 5
        while directory.listener_pid in (None, first):
            assert time.monotonic() < deadline, "the LISTEN connection was never recycled"
            await asyncio.sleep(0.05)
        await listener_live(directory)
        user_id = await _insert_user(database_url)
        assert await directory.lookup(str(user_id)) is not None
        assert len(directory) == 1  # cached again under the new connection


async def test_a_burst_of_lookups_for_one_user_reads_the_database_once(
    make_settings: SettingsFactory, database_url: str
) -> None:
    """Concurrent misses for one user share ONE read while nothing changed since it started
    (no herd of reads opening overflow connections); without the listener every lookup still
    reads for itself."""
    from sqlalchemy import event

    settings = make_settings()
    async with standalone_directory(settings, start=True) as directory:
        await listener_live(directory)
        reads: list[str] = []

        def count(conn: object, cursor: object, statement: str, *rest: object) -> None:
            if "FROM users" in statement:
                reads.append(statement)

        event.listen(directory.engine.sync_engine, "before_cursor_execute", count)
        user_id = await _insert_user(database_url)
        found = await asyncio.gather(*(directory.lookup(str(user_id)) for _ in range(50)))
        assert {status.id for status in found if status is not None} == {user_id}
        assert len(reads) == 1, f"{len(reads)} reads for 50 concurrent lookups"
        await directory.aclose()  # the listener is gone: every lookup reads for itself
        reads.clear()
        await asyncio.gather(*(directory.lookup(str(user_id)) for _ in range(5)))
        assert len(reads) == 5
