"""Rotating the Redis ACL password without a restart and without a failed command, on a private
redis-server: user app has pw1; add pw2; rotate the secret file; remove pw1. The app's pool keeps
opening new connections throughout (each authenticates with the store's CURRENT password)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.secrets.helpers import write_atomically
from tests.support.app import client_for, lifespan, resources
from tests.support.private_services import private_redis

pytestmark = pytest.mark.slow


async def test_acl_password_rotation_never_fails_a_command(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    pw1, pw2, admin_pw = (secrets.token_urlsafe(24) for _ in range(3))
    with private_redis() as server:
        admin = Redis.from_url(server.url)
        await admin.execute_command(
            "ACL", "SETUSER", "admin", "on", f">{admin_pw}", "~*", "&*", "+@all"
        )
        await admin.auth(admin_pw, "admin")
        await admin.execute_command("ACL", "SETUSER", "app", "on", f">{pw1}", "~*", "+@all")
        await admin.execute_command("ACL", "SETUSER", "default", "off")  # no anonymous access
        password_file = tmp_path / "redis_password"
        write_atomically(password_file, pw1)
        settings = make_settings(
            redis_url=server.url,
            redis_username="app",
            redis_password_file=password_file,
            secrets_refresh_seconds=1,
        )
        app = create_app(settings)
        failures: list[str] = []
        commands = 0
        stop = asyncio.Event()
        async with lifespan(app):
            redis: Redis = resources(app).redis
            key = f"{settings.redis_key_prefix}rotation"

            async def hammer() -> None:
                nonlocal commands
                async with client_for(app) as client:
                    while not stop.is_set():
                        try:
                            await redis.incr(key)
                            ready = await client.get("/health/ready")
                            if ready.json()["checks"]["redis"] != "ok":
                                failures.append(f"ready: {ready.json()}")
                        except Exception as exc:
                            failures.append(type(exc).__name__)
                        commands += 1
                        if commands % 5 == 0:  # force NEW connections, which authenticate anew
                            await redis.connection_pool.disconnect(inuse_connections=False)
                        await asyncio.sleep(0.005)

            running = asyncio.create_task(hammer())
            try:
                await asyncio.sleep(0.3)
                await admin.execute_command("ACL", "SETUSER", "app", f">{pw2}")
                await asyncio.sleep(0.2)
                write_atomically(password_file, pw2)
                deadline = time.monotonic() + settings.secrets_refresh_seconds + 1
                while resources(app).store.get("REDIS_PASSWORD").get_secret_value() != pw2:
                    assert time.monotonic() < deadline, "rotated password not picked up in time"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                await admin.execute_command("ACL", "SETUSER", "app", f"<{pw1}")
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await running
            await redis.connection_pool.disconnect()
            assert await redis.execute_command("ACL", "WHOAMI") == b"app"

        old = Redis.from_url(server.url, username="app", password=pw1)
        with pytest.raises((AuthenticationError, ResponseError)):
            await old.ping()
        await old.aclose()
        await admin.aclose()

    assert failures == []
    assert commands > 20
