"""Alembic environment: connects with the SAME resolved configuration as the app
(settings + SecretStore, so `DATABASE_PASSWORD_FILE`, `SECRETS_DIR` and references all work).
Only the database secrets are resolved: a migration job needs no access to the JWT key ring."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app.config import SECRETS, Settings
from app.db import DATABASE_SECRETS, create_engine, database_url
from app.models import Base
from app.secrets import SecretStore

target_metadata = Base.metadata


def _settings() -> Settings:
    settings = context.config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(_settings()).render_as_string(hide_password=True),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    settings = _settings()
    store = await SecretStore.open(settings, SECRETS, only=DATABASE_SECRETS)
    engine = create_engine(settings, store)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()
        await store.aclose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
