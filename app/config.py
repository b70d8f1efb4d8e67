"""Typed settings: every knob the service reads, in one place.

`Settings` describes what is *configured*. For a secret setting `X` it holds the declared value of
`X` (a literal or a secret reference such as `aws-sm://...`) and of `X_FILE`; resolving those into
current values, and refreshing them, is the job of `app.secrets.SecretStore`. Consumers never read
secret values from `Settings`: they pull them from the store so rotation reaches them.

Nothing here runs at import time: call `Settings()` (or `load_settings()`) when the process starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Environment = Literal["development", "test", "production"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

#: Secret settings, by env var name. Each may also come from `<NAME>_FILE` or `SECRETS_DIR`.
SECRET_SETTINGS: tuple[str, ...] = (
    "DATABASE_PASSWORD",
    "DATABASE_CREDENTIALS",
    "REDIS_PASSWORD",
    "JWT_KEYS",
    "METRICS_TOKEN",
)


def dotenv_applies() -> bool:
    """Whether `.env` is read: only when the process environment's `APP_ENV` is development."""
    return os.environ.get("APP_ENV", "development").strip().lower() == "development"


class _DevelopmentDotEnv(DotEnvSettingsSource):
    """`.env` is a development convenience: never read it in test or production.

    The decision uses the process environment's `APP_ENV` so a stray `.env` on a production host
    cannot switch the service into development mode or inject values.
    """

    def __call__(self) -> dict[str, Any]:
        if not dotenv_applies():
            return {}
        return super().__call__()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
        validate_default=True,
    )

    app_env: Environment = "development"

    # PostgreSQL
    database_url: str = "postgresql+asyncpg://app@localhost:5432/app"
    database_password: SecretStr | None = None
    database_password_file: Path | None = None
    database_credentials: SecretStr | None = None
    database_credentials_file: Path | None = None
    database_sslmode: SslMode | None = None
    database_ssl_ca_file: Path | None = None
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout_seconds: float = Field(5.0, gt=0)
    db_pool_recycle_seconds: int = Field(1800, ge=-1)
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_seconds: float = Field(10.0, gt=0)

    # Redis
    redis_url: str = "redis://localhost:6379/0"
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_ssl_ca_file: Path | None = None
    redis_socket_timeout_seconds: float = Field(2.0, gt=0)
    redis_max_connections: int = Field(100, ge=1)
    redis_key_prefix: str = "app:"

    # Tokens
    jwt_keys: SecretStr | None = None
    jwt_keys_file: Path | None = None
    jwt_issuer: str = "app"
    jwt_audience: str = "app"
    access_token_ttl_seconds: int = Field(900, gt=0)
    refresh_token_ttl_seconds: int = Field(1_209_600, gt=0)
    refresh_family_max_age_seconds: int = Field(2_592_000, gt=0)

    # Secrets plumbing
    secrets_dir: str = "/run/secrets"
    secrets_refresh_seconds: float = Field(60.0, gt=0)
    secrets_fetch_timeout_seconds: float = Field(10.0, gt=0)

    # Abuse limits
    login_max_failures: int = Field(10, ge=1)
    login_window_seconds: int = Field(900, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1)

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    graceful_timeout_seconds: int = Field(20, ge=0)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # None = by environment: JSON in production and test, human-readable text in development.
    log_format: Literal["json", "text"] | None = None

    # Observability (docs/operations.md): /metrics needs METRICS_TOKEN as a bearer token, or
    # comes from METRICS_ALLOWED_NETWORKS when no token is configured.
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    metrics_allowed_networks: str = "127.0.0.0/8,::1/128"
    # Tracing is off unless an OTLP endpoint is configured (needs the `[otel]` extra).
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "fastapi-secrets-template"

    @field_validator("app_env", "log_level", "log_format", "database_sslmode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def secrets_dirs(self) -> list[Path]:
        """`SECRETS_DIR` split on `:`; later directories win."""
        return [Path(part) for part in self.secrets_dir.split(":") if part.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `SECRETS_DIR` and `*_FILE` are resolved by the SecretStore (it must re-read them on
        # rotation and report where each value came from), so pydantic's own secrets source is off.
        return init_settings, env_settings, _DevelopmentDotEnv(settings_cls)
