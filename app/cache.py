"""The redis-py asyncio pool. Credentials come from the SecretStore through a
`CredentialProvider`, asked on every new connection, so a rotated password needs no restart."""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import REDIS_PASSWORD, Settings
from app.secrets import SecretStore


class StoreCredentialProvider(CredentialProvider):
    def __init__(self, username: str | None, store: SecretStore) -> None:
        self._username = username
        self._store = store

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = self._store.parsed(REDIS_PASSWORD) or ""
        if self._username:
            return (self._username, password)
        return (password,)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self.get_credentials()


def create_redis(settings: Settings, store: SecretStore) -> Redis:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_seconds,
        "socket_connect_timeout": settings.redis_socket_timeout_seconds,
        "max_connections": settings.redis_max_connections,
        "health_check_interval": 30,
        "retry_on_timeout": False,
        # After a Redis restart every pooled connection is dead; retrying a command once on a
        # fresh connection turns that into no failed request (a real outage still fails fast:
        # the reconnect is refused). Timeouts are not retried: that would double the wait.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if store.entry(REDIS_PASSWORD.name) is not None:
        options["credential_provider"] = StoreCredentialProvider(settings.redis_username, store)
    if settings.redis_ssl_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_file)
    pool = ConnectionPool.from_url(settings.redis_url, **options)
    return Redis(connection_pool=pool)
