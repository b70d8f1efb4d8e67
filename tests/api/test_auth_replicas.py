"""Revocation is shared through Redis: every replica refuses a revoked token, and no replica
accepts a token it cannot check (Redis down -> 503, never 200)."""

from __future__ import annotations

import pytest

from tests.api.auth_helpers import bearer, login, logout, me, refresh, signed_in
from tests.conftest import SettingsFactory
from tests.security.user_cache_helpers import me_becomes
from tests.support.app import client_for, resources, revocations_live, running_app
from tests.support.private_services import private_redis
from tests.support.server import free_port


async def test_logout_on_one_replica_is_refused_by_another(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        await revocations_live(one)
        await revocations_live(two)
        _, tokens = await signed_in(a)
        assert (await me(b, tokens["access_token"])).status_code == 200
        assert (await logout(a, tokens["access_token"])).status_code == 204
        seen = await me_becomes(b, bearer(tokens["access_token"]), 401)
        assert seen[-1] == 401, seen
        # Replica two answered from its local mirror: no Redis round trip was needed.
        assert resources(two).security.revocations.mirror_is_live


async def test_a_replica_started_after_the_logout_knows_about_it(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with running_app(settings) as one, client_for(one) as a:
        _, tokens = await signed_in(a)
        assert (await logout(a, tokens["access_token"])).status_code == 204
    async with running_app(settings) as late, client_for(late) as c:
        await revocations_live(late)
        assert (await me(c, tokens["access_token"])).status_code == 401


async def test_refresh_reuse_on_another_replica_revokes_the_family(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        _, tokens = await signed_in(a)
        rotated = await refresh(a, tokens["refresh_token"])
        assert rotated.status_code == 200
        replay = await refresh(b, tokens["refresh_token"])
        assert replay.status_code == 401
        newest = await refresh(a, rotated.json()["refresh_token"])
        assert newest.status_code == 401


async def test_unreachable_redis_gives_503_never_200(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with running_app(settings) as one, client_for(one) as a:
        _, tokens = await signed_in(a)
    closed = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_socket_timeout_seconds=0.5
    )
    async with running_app(closed) as down, client_for(down) as c:
        profile = await me(c, tokens["access_token"])
        assert profile.status_code == 503
        assert tokens["access_token"] not in profile.text
        assert (await logout(c, tokens["access_token"])).status_code == 503
        assert (await refresh(c, tokens["refresh_token"])).status_code == 503
        assert (await login(c, "a@b.example", "whatever1")).status_code == 503


@pytest.mark.slow
async def test_redis_stopping_while_serving_fails_closed_then_recovers(
    make_settings: SettingsFactory,
) -> None:
    with private_redis() as redis_server:
        settings = make_settings(redis_url=redis_server.url, redis_socket_timeout_seconds=0.5)
        async with running_app(settings) as app, client_for(app) as client:
            await revocations_live(app)
            _, revoked = await signed_in(client)
            _, valid = await signed_in(client)
            assert (await logout(client, revoked["access_token"])).status_code == 204
            assert (await me(client, valid["access_token"])).status_code == 200
            redis_server.stop()
            seen = await me_becomes(client, bearer(valid["access_token"]), 503, within=3)
            assert seen[-1] == 503, seen
            assert (await me(client, revoked["access_token"])).status_code in {401, 503}
            redis_server.start()
            recovered = await me_becomes(
                client, bearer(valid["access_token"]), 200, within=10, never=500
            )
            assert recovered[-1] == 200, recovered
            # Redis came back empty (no persistence); this replica still remembers the logout.
            assert (await me(client, revoked["access_token"])).status_code == 401
