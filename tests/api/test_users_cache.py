"""`GET /api/v1/users/me` with the user cache across replicas, and the migration behind it."""

from __future__ import annotations

import asyncpg

from tests.api.auth_helpers import bearer, signed_in
from tests.conftest import SettingsFactory
from tests.security.user_cache_helpers import ME, directory_of, listener_live, me_becomes, sql
from tests.support.app import client_for, running_app
from tests.support.server import base_env, run_cli
from tests.support.services import asyncpg_dsn, create_database, drop_database


async def test_every_replica_refuses_a_user_disabled_in_sql(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        await listener_live(directory_of(one))
        await listener_live(directory_of(two))
        email, tokens = await signed_in(a)
        headers = bearer(tokens["access_token"])
        assert (await a.get(ME, headers=headers)).status_code == 200
        assert (await b.get(ME, headers=headers)).status_code == 200
        assert len(directory_of(one)) == 1  # both replicas answer from their cache now
        assert len(directory_of(two)) == 1

        await sql(database_url, ("UPDATE users SET is_active = false WHERE email = $1", email))
        assert (await me_becomes(a, headers, 401))[-1] == 401
        assert (await me_becomes(b, headers, 401))[-1] == 401


async def test_migrate_installs_the_notify_trigger_and_can_run_again(jwt_secret: str) -> None:
    url = await create_database("usercache")
    try:
        env = base_env(DATABASE_URL=url, JWT_KEYS=jwt_secret)
        for _ in range(2):
            result = run_cli("migrate", env=env)
            assert result.returncode == 0, result.stderr
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            triggers = await connection.fetch(
                "SELECT tgname, tgenabled::text FROM pg_trigger "
                "WHERE tgrelid = 'users'::regclass AND NOT tgisinternal ORDER BY tgname"
            )
        finally:
            await connection.close()
        # 'A' = ENABLE ALWAYS: fires even under session_replication_role = replica.
        assert [(row["tgname"], row["tgenabled"]) for row in triggers] == [
            ("users_changed", "A"),
            ("users_truncated", "A"),
        ]
    finally:
        await drop_database(url)
