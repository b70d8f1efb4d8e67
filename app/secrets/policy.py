"""What makes a secret value acceptable: non-empty, well-formed, and strong in production.

Checks run at startup (a failure stops the process) and on every rotation (a failure keeps the
last good value). Messages name the problem, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from app.config import Settings

#: Values that mean "nobody configured this". Compared case-insensitively, ignoring whitespace.
PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "change-this",
        "change_this",
        "secret",
        "secrets",
        "password",
        "passw0rd",
        "p@ssw0rd",
        "admin",
        "root",
        "default",
        "example",
        "test",
        "testing",
        "dev",
        "development",
        "todo",
        "fixme",
        "xxx",
        "xxxx",
        "123456",
        "12345678",
        "letmein",
        "qwerty",
        "supersecret",
        "super-secret",
        "mysecret",
        "my-secret",
        "your-secret",
        "your-secret-key",
        "secret-key",
        "secretkey",
        "jwt-secret",
        "jwtsecret",
        "insecure",
        "postgres",
        "redis",
        "app",
    }
)

#: Secrets that must be present in every environment (development may generate them instead).
REQUIRED = frozenset({"JWT_KEYS"})


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


def _check_jwt_keys(value: str, settings: Settings) -> list[str]:
    from app.security.keyring import KeyRing, KeyRingError

    try:
        ring = KeyRing.parse(value)
    except KeyRingError as exc:
        return [str(exc)]
    return ring.weak_key_problems() if settings.is_production else []


def _check_database_credentials(value: str, settings: Settings) -> list[str]:
    try:
        document = json.loads(value)
    except ValueError:
        return ['must be a JSON object {"username": ..., "password": ...}']
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), str) and document.get(key) for key in ("username", "password")
    ):
        return ['must be a JSON object with non-empty "username" and "password" strings']
    if settings.is_production and is_placeholder(document["password"]):
        return ["password is a known placeholder; production refuses it"]
    return []


def _check_plain(value: str, settings: Settings) -> list[str]:
    if settings.is_production and is_placeholder(value):
        return ["is a known placeholder value; production refuses it"]
    return []


CHECKS: dict[str, Callable[[str, Settings], list[str]]] = {
    "JWT_KEYS": _check_jwt_keys,
    "DATABASE_CREDENTIALS": _check_database_credentials,
    "DATABASE_PASSWORD": _check_plain,
    "REDIS_PASSWORD": _check_plain,
}


def check_value(setting: str, value: str, settings: Settings) -> list[str]:
    if value == "" or value.strip() == "":
        return ["is empty"]
    check = CHECKS.get(setting, _check_plain)
    return check(value, settings)
