"""Alembic environment: connects with the SAME resolved configuration as the app
(settings + SecretStore, so `DATABASE_PASSWORD_FILE`, `SECRETS_DIR` and references all work).
Only the database secrets are resolved: a migration job needs no access to the JWT key ring.

Logging follows alembic.ini (so `migrate` says which revisions it ran) unless the caller set up
logging already, and every handler gets the app's redaction filter, with the store's values
registered while it is open: no secret reaches the output.
"""

from __future__ import annotations

import asyncio
import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app.config import SECRETS, Settings
from app.db import DATABASE_SECRETS, create_engine, database_url
from app.models import Base
from app.secrets import SecretStore
from app.secrets.redaction import install_on_root, register_secret_source

target_metadata = Base.metadata
log = logging.getLogger("alembic.env")


def _configure_logging() -> None:
    if context.config.config_file_name is not None and not logging.getLogger().handlers:
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    install_on_root()


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
    log.info("database at revision %s", context.get_context().get_current_revision())


async def run_migrations_online() -> None:
    attributes = context.config.attributes
    settings = _settings()
    store = await SecretStore.open(settings, SECRETS, only=DATABASE_SECRETS)
    unregister = register_secret_source(store)
    log.info("database %s", database_url(settings).render_as_string(hide_password=True))
    # For the caller's error report (`python -m app migrate`), which runs after this returns.
    attributes["secret_values"] = store.values()
    engine = create_engine(settings, store)
    # `migrate` passes a connect function that waits for a server still starting up.
    connect = attributes.get("connect")
    try:
        connection = await (connect(engine) if connect is not None else engine.connect())
        try:
            await connection.run_sync(_run)
            await connection.commit()
        finally:
            await connection.close()
    finally:
        await engine.dispose()
        await store.aclose()
        unregister()


_configure_logging()
if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
