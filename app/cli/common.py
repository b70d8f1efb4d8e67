"""Shared CLI plumbing: load settings and secrets, print config problems, never values."""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError

from app.config import Settings, dotenv_applies
from app.secrets import ConfigError, ConfigProblem


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
