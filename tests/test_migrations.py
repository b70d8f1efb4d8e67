"""Migrations: the migrated schema is exactly what `app/models.py` declares (so autogenerate has
nothing to add), downgrade and upgrade again work, the new constraints hold, and the users
NOTIFY trigger of 0002 fires for the columns 0003 and 0004 added."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.models import Base
from app.user_status import CHANNEL
from tests.support.services import asyncpg_dsn, create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]


def _alembic(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["settings"] = Settings(
        _env_file=None,
        app_env="test",
        database_url=url,
        jwt_keys=secrets.token_urlsafe(48),
        secrets_dir="/nonexistent",
    )
    return config


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


async def test_downgrade_to_0002_and_upgrade_again() -> None:
    url = await create_database()
    try:
        config = _alembic(url)
        # env.py calls asyncio.run(): Alembic runs in a thread, as in tests/conftest.py.
        await asyncio.to_thread(command.upgrade, config, "head")
        await asyncio.to_thread(command.downgrade, config, "0002")
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            tables = {
                r["tablename"] for r in await connection.fetch("SELECT tablename FROM pg_tables")
            }
            columns = {
                r["column_name"]
                for r in await connection.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
                )
            }
        finally:
            await connection.close()
        assert not {"items", "account_tokens", "api_keys", "mfa_recovery_codes"} & tables
        assert not {"role", "email_verified", "mfa_secret", "mfa_enabled"} & columns
        await asyncio.to_thread(command.upgrade, config, "head")
    finally:
        await drop_database(url)


async def _user(connection: asyncpg.Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')",
        user_id,
        f"m-{user_id.hex[:8]}@example.com",
    )
    return user_id


async def test_new_columns_have_defaults_and_constraints(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        user_id = await _user(connection)
        row = await connection.fetchrow(
            "SELECT role, email_verified FROM users WHERE id = $1", user_id
        )
        assert (row["role"], row["email_verified"]) == ("user", False)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute("UPDATE users SET role = 'root' WHERE id = $1", user_id)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO account_tokens (id, user_id, purpose, token_hash, expires_at) "
                "VALUES ($1, $2, 'login', $3, now())",
                uuid.uuid4(),
                user_id,
                "a" * 64,
            )
        insert_token = (
            "INSERT INTO account_tokens (id, user_id, purpose, token_hash, expires_at) "
            "VALUES ($1, $2, 'password_reset', $3, now() + interval '30 minutes')"
        )
        await connection.execute(insert_token, uuid.uuid4(), user_id, "b" * 64)
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert_token, uuid.uuid4(), user_id, "b" * 64)
        await connection.execute(
            "INSERT INTO items (id, owner_id, title) VALUES ($1, $2, 'x')", uuid.uuid4(), user_id
        )
        # Deleting the user deletes what it owns.
        await connection.execute("DELETE FROM users WHERE id = $1", user_id)
        await _assert_nothing_left(
            connection, user_id, ("account_tokens", "user_id"), ("items", "owner_id")
        )
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "change",
    ["role = 'admin'", "email_verified = true", "is_active = false", "mfa_last_step = 1"],
)
async def test_users_changed_is_notified_for_role_and_verification(
    database_url: str, change: str
) -> None:
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    writer = await asyncpg.connect(asyncpg_dsn(database_url))
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        user_id = await _user(writer)
        await listener.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
        await writer.execute(f"UPDATE users SET {change} WHERE id = $1", user_id)  # noqa: S608
        assert await asyncio.wait_for(received.get(), timeout=5) == str(user_id)
    finally:
        await listener.close()
        await writer.close()


async def test_mfa_and_api_key_constraints(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        user_id = await _user(connection)
        row = await connection.fetchrow(
            "SELECT mfa_secret, mfa_enabled, mfa_last_step FROM users WHERE id = $1", user_id
        )
        assert tuple(row) == (None, False, None)
        with pytest.raises(asyncpg.CheckViolationError):  # enabled needs a seed
            await connection.execute("UPDATE users SET mfa_enabled = true WHERE id = $1", user_id)
        insert_code = "INSERT INTO mfa_recovery_codes (id, user_id, code_hash) VALUES ($1, $2, $3)"
        await connection.execute(insert_code, uuid.uuid4(), user_id, "c" * 64)
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert_code, uuid.uuid4(), user_id, "c" * 64)
        insert_key = (
            "INSERT INTO api_keys (id, owner_id, name, lookup_id, key_hash) "
            "VALUES ($1, $2, 'ci', $3, $4)"
        )
        await connection.execute(insert_key, uuid.uuid4(), user_id, "abcdefghij", "d" * 64)
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert_key, uuid.uuid4(), user_id, "abcdefghij", "e" * 64)
        scopes = await connection.fetchval(
            "SELECT scopes FROM api_keys WHERE owner_id = $1", user_id
        )
        assert scopes == []
        await connection.execute("DELETE FROM users WHERE id = $1", user_id)
        await _assert_nothing_left(
            connection, user_id, ("mfa_recovery_codes", "user_id"), ("api_keys", "owner_id")
        )
    finally:
        await connection.close()


async def _assert_nothing_left(
    connection: asyncpg.Connection, user_id: uuid.UUID, *owned: tuple[str, str]
) -> None:
    """No row of `owned` ((table, owner column), ...) still belongs to the deleted `user_id`."""
    for table, column in owned:
        left = await connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1",  # noqa: S608 - constants
            user_id,
        )
        assert left == 0, table
