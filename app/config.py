"""Typed settings: every knob the service reads, in one place, and the secret declarations.

`Settings` describes what is *configured*. For each declared secret `X` (the `SECRETS` registry
below) it keeps how `X` was given: the value of `X` (a literal or a reference such as
`aws-sm://...`) and/or `X_FILE`, read through `settings.secret_input("X")`. Resolving those into
current values, and refreshing them, is the job of `app.secrets.SecretStore`. Consumers never read
secret values from `Settings`: they pull them from the store so rotation reaches them.

Adding a secret is ONE declaration in `SECRETS` (docs/extending.md): its `X` / `X_FILE` /
`SECRETS_DIR` binding, `config check`, `secrets init`, redaction and the tests derive from it.

Nothing here runs at import time but the declarations: call `Settings()` when the process starts.
"""

from __future__ import annotations

import os
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlsplit

from limits import parse as parse_rate_limit
from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.keys.data import DataKeyRing, data_ring_checks, new_dev_data_ring
from app.keys.kms import parse_data_keys_blocking
from app.keys.signing import KeyRing, new_dev_ring, parse_ring, ring_checks
from app.secrets import ConfigProblem, SecretInput, SecretRegistry, SecretSpec
from app.secrets.checks import (
    Credentials,
    credentials,
    credentials_not_placeholder,
    new_password,
    not_placeholder,
    strong_token,
    text,
)

# ---- the secrets the service reads (SPEC section 2) ------------------------------------------

DATABASE_PASSWORD = SecretSpec[str](
    name="DATABASE_PASSWORD",
    description="PostgreSQL password, asked for by every NEW pool connection",
    parse=text,
    check=not_placeholder,
    generate=new_password,
)
DATABASE_CREDENTIALS = SecretSpec[Credentials](
    name="DATABASE_CREDENTIALS",
    description='{"username","password"} (e.g. a Vault database lease); overrides the URL user',
    parse=credentials,
    check=credentials_not_placeholder,
)
REDIS_PASSWORD = SecretSpec[str](
    name="REDIS_PASSWORD",
    description="Redis ACL password, through the pool's credential provider",
    parse=text,
    check=not_placeholder,
    generate=new_password,
)
JWT_KEYS = SecretSpec[KeyRing](
    name="JWT_KEYS",
    description="the JWT key ring: a JWK Set, or raw HMAC secrets one per line (newest first)",
    parse=parse_ring,
    check=ring_checks,
    required=True,
    generate=new_dev_ring,
)
METRICS_TOKEN = SecretSpec[str](
    name="METRICS_TOKEN",
    description="bearer token for /metrics (production: the only way in)",
    parse=text,
    check=strong_token,
    generate=new_password,
)

SMTP_PASSWORD = SecretSpec[str](
    name="SMTP_PASSWORD",
    description="SMTP AUTH password for the user named in SMTP_URL, read at every connection",
    parse=text,
    check=not_placeholder,
    # No dev generator: a random value is useless, the mail server's account sets it.
)

DATA_KEYS = SecretSpec[DataKeyRing](
    name="DATA_KEYS",
    description="A256GCM data keys sealing the secrets kept in the database (TOTP seeds): a "
    "JWK Set, or its envelope form wrapped by a KMS key (unwrapped here, once per value)",
    # Runs in a thread once per NEW value (startup, rotation): KMS calls never per request.
    parse=parse_data_keys_blocking,
    check=data_ring_checks,
    # An encrypted column exists (users.mfa_secret): production must keep its keys. Elsewhere
    # a throwaway ring is generated (with a warning), so a fresh clone and the tests just run.
    required="production",
    generate=new_dev_data_ring,
)

#: Every secret, in the order `config check` shows them. Declare a new one here (and say what
#: it is for in .env.example and docs/secrets.md): that is all it takes.
SECRETS = SecretRegistry(
    DATABASE_PASSWORD,
    DATABASE_CREDENTIALS,
    REDIS_PASSWORD,
    JWT_KEYS,
    DATA_KEYS,
    METRICS_TOKEN,
    SMTP_PASSWORD,
)

Environment = Literal["development", "test", "production"]

#: `JWT_ISSUER` / `JWT_AUDIENCE` values that identify the template, not a service.
TEMPLATE_CLAIMS = frozenset({"", "app"})
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class SmtpServer(NamedTuple):
    """`SMTP_URL` taken apart: `smtp://[user@]host[:port]` or `smtps://...` (implicit TLS)."""

    host: str
    port: int
    username: str | None
    implicit_tls: bool


def parse_smtp_url(url: str) -> SmtpServer:
    """Validate `SMTP_URL`; errors never quote it. A password in it is refused: it would be a
    secret in a plain setting (shown by `config check`, never rotated): use SMTP_PASSWORD."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("must be smtp://[user@]host[:port] or smtps://...") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// (STARTTLS when offered) or smtps:// (TLS)")
    if parts.password is not None:
        raise ValueError("must not hold a password: give it as the SMTP_PASSWORD secret")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be smtp://[user@]host[:port] or smtps://... (no path or query)")
    implicit_tls = scheme == "smtps"
    return SmtpServer(
        host=parts.hostname,
        port=port if port is not None else (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        implicit_tls=implicit_tls,
    )


def dotenv_applies() -> bool:
    """Whether `.env` is read: only when the process environment's `APP_ENV` is development."""
    return os.environ.get("APP_ENV", "development").strip().lower() == "development"


def _declared(values: dict[str, Any]) -> dict[str, Any]:
    variables = SECRETS.variables()
    return {k: v for k, v in values.items() if k.upper() in variables}


class _DeclaredSecretsEnv(EnvSettingsSource):
    """`X` and `X_FILE` of every declared secret from the process environment (they are not
    fields: the registry, not the field list, says which secrets exist)."""

    def __call__(self) -> dict[str, Any]:
        return _declared(dict(self.env_vars))


class _DevelopmentDotEnv(DotEnvSettingsSource):
    """`.env` is a development convenience: never read it in test or production.

    The decision uses the process environment's `APP_ENV` so a stray `.env` on a production host
    cannot switch the service into development mode or inject values.
    """

    def __call__(self) -> dict[str, Any]:
        if not dotenv_applies():
            return {}
        return {**_declared(dict(self.env_vars)), **super().__call__()}


def _secret_input(name: str, values: dict[str, Any]) -> SecretInput:
    value, path = values.get(name), values.get(f"{name}_FILE")
    if value is not None and not isinstance(value, SecretStr):
        value = SecretStr(str(value))
    return SecretInput(value, Path(path) if path is not None else None)


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
    redis_ssl_ca_file: Path | None = None
    redis_socket_timeout_seconds: float = Field(2.0, gt=0)
    redis_max_connections: int = Field(100, ge=1)
    redis_key_prefix: str = "app:"

    # Tokens
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
    # Per client IP, shared by replicas through Redis: `N/second|minute|hour|day`.
    rate_limit_login: str = "30/minute"
    rate_limit_register: str = "10/hour"
    rate_limit_refresh: str = "60/minute"
    rate_limit_password_reset: str = "5/hour"  # noqa: S105 - a rate, not a password
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or
    # networks, `*` for any): the client address of rate limits and audit lines comes from them.
    forwarded_allow_ips: str = "127.0.0.1"

    # Browser clients: exact origins allowed to call the API with credentials (comma-separated;
    # `*` only outside production), and the refresh token in an HttpOnly cookie as well.
    cors_origins: str = ""
    refresh_token_cookie: bool = False

    # Mail (docs/mail.md). Production needs SMTP_URL; elsewhere, without it, mails are written
    # to MAIL_OUTBOX_DIR as .eml files (or dropped, with a warning, when that is unset too).
    smtp_url: str | None = None
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    smtp_ssl_ca_file: Path | None = None
    mail_from: str = "no-reply@localhost"
    mail_send_attempts: int = Field(3, ge=1, le=10)
    mail_outbox_dir: Path | None = None
    public_base_url: str = "http://localhost:8000"

    # Accounts: lifetimes of the single-use mailed tokens, and the login gate on verification.
    password_reset_ttl_seconds: int = Field(1800, gt=0)
    email_verify_ttl_seconds: int = Field(86_400, gt=0)
    require_verified_email: bool = False
    # The name authenticator apps show next to a TOTP entry (the otpauth URI's issuer).
    mfa_issuer: str = Field("fastapi-secrets-template", min_length=1, max_length=64)

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
    # Development and test only: without METRICS_TOKEN, these networks may scrape. Production
    # answers /metrics to the token alone (a local proxy connects from loopback too).
    metrics_allowed_networks: str = "127.0.0.0/8,::1/128"
    # How often sealed values are counted per data key (`data_key_values`): one GROUP BY per
    # encrypted column, in the background.
    data_key_metrics_seconds: float = Field(60.0, gt=0)
    # Tracing is off unless an OTLP endpoint is configured (needs the `[otel]` extra).
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "fastapi-secrets-template"

    # How each declared secret was given (see `secret_input`); never part of a repr or dump.
    _secret_inputs: dict[str, SecretInput] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _collect_secret_inputs(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        given = {k.upper(): v for k, v in _declared(data).items() if v is not None}
        wrong = [k for k, v in given.items() if not isinstance(v, str | SecretStr | os.PathLike)]
        if wrong:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("string_type", "must be a string"),
                        loc=(name.lower(),),
                        input="[hidden]",  # never the value, even in str(error)
                    )
                    for name in wrong
                ],
            )
        settings = handler({k: v for k, v in data.items() if k.upper() not in SECRETS.variables()})
        settings._secret_inputs = {spec.name: _secret_input(spec.name, given) for spec in SECRETS}
        return settings

    def secret_input(self, name: str) -> SecretInput:
        """How the secret `name` was configured (`X` and/or `X_FILE`); empty when not at all."""
        return self._secret_inputs.get(name, SecretInput())

    @field_validator("app_env", "log_level", "log_format", "database_sslmode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "rate_limit_login", "rate_limit_register", "rate_limit_refresh", "rate_limit_password_reset"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            item = parse_rate_limit(value)
        except ValueError:
            item = None
        if item is None or item.amount < 1:
            raise ValueError("must look like N/second, N/minute, N/hour or N/day (N >= 1)")
        return value

    @field_validator("smtp_url", "mail_outbox_dir", "smtp_ssl_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_smtp_url(value)
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        value = value.strip()
        _, address = parseaddr(value)
        if "\r" in value or "\n" in value or "@" not in address:
            raise ValueError("must be an address (no-reply@example.com or Name <no-reply@...>)")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment (links are built under it)")
        return value.strip().rstrip("/")

    @property
    def smtp_server(self) -> SmtpServer | None:
        """`SMTP_URL` parsed (validated when the settings were built), None when unset."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url is not None else None

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    def production_problems(self) -> list[ConfigProblem]:
        """Plain settings production refuses (secrets have their own checks): reported with the
        secrets' problems at startup and by `config check`, never quoting a secret."""
        if not self.is_production:
            return []
        problems = []
        for name in ("jwt_issuer", "jwt_audience"):
            if getattr(self, name).strip() in TEMPLATE_CLAIMS:
                problems.append(
                    ConfigProblem(
                        name.upper(),
                        "env" if name in self.model_fields_set else "default",
                        "is the template's default; production needs your service's own value "
                        "(e.g. its URL), so another service's tokens are never accepted here",
                    )
                )
        if "*" in self.allowed_origins:
            problems.append(
                ConfigProblem(
                    "CORS_ORIGINS",
                    "env",
                    "'*' would let any website call the API with your users' credentials; "
                    "list the exact origins",
                )
            )
        return problems

    @property
    def allowed_origins(self) -> list[str]:
        """`CORS_ORIGINS` as a list (trailing slashes dropped: an Origin header has none)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

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
        return (
            init_settings,
            env_settings,
            _DeclaredSecretsEnv(settings_cls),
            _DevelopmentDotEnv(settings_cls),
        )


def _check_declarations() -> None:
    """A declared secret whose name is also a plain setting would be read twice, differently:
    refuse that at import, loudly."""
    fields = {name.upper() for name in Settings.model_fields}
    clashing = sorted(v for v in SECRETS.variables() if v in fields)
    if clashing:
        raise TypeError(f"declared secrets clash with plain settings: {', '.join(clashing)}")


_check_declarations()
