"""Rotating the PostgreSQL password without a restart, on a private cluster that CHECKS passwords
(scram-sha-256; the shared test server trusts everyone): role app has pw1, the app serves, the
role's password becomes pw2 and the secret file is rewritten; new connections use pw2."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.secrets.helpers import write_atomically
from tests.support.app import client_for, lifespan, resources
from tests.support.private_services import private_postgres

pytestmark = pytest.mark.slow


async def test_new_connections_use_the_rotated_password(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    pw1, pw2 = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with private_postgres() as cluster:
        cluster.psql(f"CREATE ROLE app LOGIN PASSWORD '{pw1}'")
        password_file = tmp_path / "database_password"
        write_atomically(password_file, pw1)
        settings = make_settings(
            database_url=cluster.url("app"),
            database_password_file=password_file,
            db_pool_recycle_seconds=1,
            secrets_refresh_seconds=1,
        )
        app = create_app(settings)
        async with lifespan(app):
            engine = resources(app).engine
            async with client_for(app) as client:
                assert (await client.get("/health/ready")).json()["checks"]["database"] == "ok"
                async with engine.connect() as connection:
                    result = await connection.execute(text("SELECT pg_backend_pid()"))
                    pid_before = result.scalar()

                cluster.psql(f"ALTER ROLE app PASSWORD '{pw2}'")
                with pytest.raises(asyncpg.InvalidPasswordError):  # the server really checks
                    await asyncpg.connect(
                        host="127.0.0.1",
                        port=cluster.port,
                        user="app",
                        password=pw1,
                        database="postgres",
                    )
                write_atomically(password_file, pw2)

                deadline = time.monotonic() + settings.secrets_refresh_seconds + 1
                while resources(app).store.get("DATABASE_PASSWORD").get_secret_value() != pw2:
                    assert time.monotonic() < deadline, "rotated password not picked up in time"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(settings.db_pool_recycle_seconds + 0.2)  # pooled conn expires

                ready = await client.get("/health/ready")
                async with engine.connect() as connection:
                    row = (
                        await connection.execute(text("SELECT pg_backend_pid(), current_user"))
                    ).one()
                await engine.dispose()  # and a pool with no connections at all
                async with engine.connect() as connection:
                    fresh = (await connection.execute(text("SELECT current_user"))).scalar()

    assert ready.status_code == 200, ready.text
    assert row[0] != pid_before, "the pooled connection should have been recycled"
    assert row[1] == "app"
    assert fresh == "app"
