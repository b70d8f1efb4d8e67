"""The SQLAlchemy async engine (asyncpg) and sessions.

The password is not part of the engine URL: a `do_connect` hook asks the SecretStore for the
current credentials each time the pool opens a NEW connection, so a rotated password is used
from the next connection on, and existing connections are recycled by `pool_recycle`.
"""

from __future__ import annotations

import ssl
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import DATABASE_CREDENTIALS, DATABASE_PASSWORD, Settings
from app.secrets import SecretStore


def database_url(settings: Settings) -> URL:
    url = make_url(settings.database_url)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+asyncpg")
    return url


def _ssl_argument(settings: Settings) -> ssl.SSLContext | str | None:
    mode = settings.database_sslmode
    if mode is None:
        return None
    if settings.database_ssl_ca_file is not None and mode in {"verify-ca", "verify-full"}:
        context = ssl.create_default_context(cafile=str(settings.database_ssl_ca_file))
        context.check_hostname = mode == "verify-full"
        return context
    return mode


#: The only secrets a database connection needs (what `migrate` resolves: least privilege).
DATABASE_SECRETS = (DATABASE_PASSWORD.name, DATABASE_CREDENTIALS.name)


def current_credentials(store: SecretStore) -> dict[str, str]:
    """User/password for a new connection, read from the store at this instant."""
    composite = store.parsed(DATABASE_CREDENTIALS)
    if composite is not None:
        return {"user": composite.username, "password": composite.password}
    password = store.parsed(DATABASE_PASSWORD)
    return {"password": password} if password is not None else {}


def pool_recycle_seconds(settings: Settings, store: SecretStore) -> int:
    """`DB_POOL_RECYCLE_SECONDS`, capped below a leased credential's lifetime.

    Dynamic credentials (a Vault database lease) are renewed or replaced at half their remaining
    life, so credentials being replaced still have at least a quarter of the lease to live:
    recycling connections within that quarter means no connection outlives its credentials.
    """
    configured = settings.db_pool_recycle_seconds
    entry = store.entry(DATABASE_CREDENTIALS.name)
    if entry is None or entry.ttl is None:
        return configured
    cap = max(1, int(entry.ttl / 4))
    return cap if configured < 0 else min(configured, cap)


def _connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg arguments shared by pooled connections and dedicated ones (timeouts, TLS, name)."""
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_statement_timeout_seconds,
        "server_settings": {
            "statement_timeout": str(int(settings.db_statement_timeout_seconds * 1000)),
            "application_name": "fastapi-secrets-template",
        },
    }
    ssl_arg = _ssl_argument(settings)
    if ssl_arg is not None:
        connect_args["ssl"] = ssl_arg
    return connect_args


#: URL query options that SQLAlchemy's asyncpg dialect consumes itself (not asyncpg's).
_DIALECT_ONLY_OPTIONS = (
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_fallback",
)


async def connect_dedicated(settings: Settings, store: SecretStore) -> asyncpg.Connection:
    """One asyncpg connection outside the pool (e.g. a LISTEN connection), opened exactly like a
    pooled one: same target, TLS, timeouts, application_name and CURRENT credentials."""
    url = database_url(settings)
    _, params = url.get_dialect()().create_connect_args(url)  # the pool's own URL parsing
    for option in _DIALECT_ONLY_OPTIONS:
        params.pop(option, None)
    params.update(_connect_args(settings))
    params.update(current_credentials(store))
    return await asyncpg.connect(**params)


def create_engine(settings: Settings, store: SecretStore, **options: Any) -> AsyncEngine:
    """The process's one pooled engine; `options` override `create_async_engine` arguments.

    `hide_parameters`: a failing statement's log line and exception never carry its bound
    parameters (an email, a hash)."""
    connect_args = _connect_args(settings)
    arguments: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": pool_recycle_seconds(settings, store),
        "pool_pre_ping": True,
        "hide_parameters": True,
        "connect_args": connect_args,
    }
    arguments.update(options)
    engine = create_async_engine(database_url(settings), **arguments)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _inject_credentials(
        dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
    ) -> None:
        cparams.update(current_credentials(store))

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
