"""Shared CLI plumbing: load settings and secrets, print config problems, never values."""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError

from app.config import SECRETS, Settings, dotenv_applies
from app.mail import mail_problems
from app.secrets import ConfigError, ConfigProblem, SecretStore
from app.secrets.store import EventSink


def setting_origin(name: str) -> str:
    """Where a plain setting's value came from, for messages: the environment or `.env`."""
    if any(key.upper() == name for key in os.environ):
        return "env"
    return ".env" if dotenv_applies() and os.path.isfile(".env") else "default"


def settings_problems(exc: ValidationError) -> ConfigError:
    """Pydantic errors without `input` or `ctx`: they can hold the offending (secret) value."""
    problems = []
    for error in exc.errors(include_input=False, include_context=False, include_url=False):
        name = "_".join(str(part) for part in error["loc"]).upper() or "SETTINGS"
        problems.append(ConfigProblem(name, setting_origin(name), error["msg"]))
    return ConfigError(problems)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_problems(exc) from None


def report(error: ConfigError) -> int:
    """One line per problem on stderr (`config error: SETTING (from ORIGIN): what is wrong`)."""
    for line in error.lines():
        print(line, file=sys.stderr)
    return 1


async def resolve_all(
    settings: Settings, events: EventSink | None = None
) -> tuple[SecretStore, list[ConfigProblem]]:
    """Every secret resolved, and every problem startup would refuse: the production rules for
    plain settings first, then the secrets'. The store is returned even with problems, for
    `config check`'s table; the caller closes it."""
    store, problems = await SecretStore.resolve(settings, SECRETS, events=events)
    return store, [*settings.production_problems(), *problems, *mail_problems(settings, store)]


async def open_checked(settings: Settings, events: EventSink | None = None) -> SecretStore:
    """`resolve_all`, refusing to go on (ConfigError listing every problem) when any exists."""
    store, problems = await resolve_all(settings, events)
    if problems:
        await store.aclose()
        raise ConfigError(problems)
    return store
