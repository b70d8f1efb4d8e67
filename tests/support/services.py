"""Throwaway resources on the real PostgreSQL and Redis: a database per test run, a key prefix."""

from __future__ import annotations

import os
import uuid

import asyncpg
from sqlalchemy.engine import make_url

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants plain `postgresql://`; SQLAlchemy URLs carry `+asyncpg`."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def create_database(prefix: str = "test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(TEST_DATABASE_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return sqlalchemy_url(make_url(TEST_DATABASE_URL).set(database=name).render_as_string(False))


async def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(TEST_DATABASE_URL))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:"
