"""Building blocks for secret declarations: parsers, production checks and dev generators that
several secrets share. Messages name the problem, never the value.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.secrets.spec import CheckContext

#: Values that mean "nobody configured this". Compared case-insensitively, ignoring whitespace.
PLACEHOLDERS = frozenset(
    {
        "changeme", "change-me", "change_me", "changethis", "change-this", "change_this",
        "secret", "secrets", "password", "passw0rd", "p@ssw0rd", "admin", "root", "default",
        "example", "test", "testing", "dev", "development", "todo", "fixme", "xxx", "xxxx",
        "123456", "12345678", "letmein", "qwerty", "supersecret", "super-secret", "mysecret",
        "my-secret", "your-secret", "your-secret-key", "secret-key", "secretkey", "jwt-secret",
        "jwtsecret", "insecure", "postgres", "redis", "app",
    }
)  # fmt: skip


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


# ---- plain text secrets (passwords, tokens) ------------------------------------------------


def text(value: str) -> str:
    """A plain secret is its text; the store has already refused an empty one."""
    return value


def not_placeholder(value: str, context: CheckContext) -> Sequence[str]:
    if context.production and is_placeholder(value):
        return ["is a known placeholder value; production refuses it"]
    return ()


def new_password() -> str:
    """URL-safe, so it works unquoted in DSNs, compose files and shells (256 bits)."""
    return secrets.token_urlsafe(32)


# ---- a composite {"username", "password"} secret ------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def credentials(value: str) -> Credentials:
    try:
        document = json.loads(value)
    except ValueError:
        raise ValueError('must be a JSON object {"username": ..., "password": ...}') from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), str) and document.get(key) for key in ("username", "password")
    ):
        raise ValueError('must be a JSON object with non-empty "username" and "password" strings')
    return Credentials(document["username"], document["password"])


def credentials_not_placeholder(value: Credentials, context: CheckContext) -> Sequence[str]:
    if context.production and is_placeholder(value.password):
        return ["password is a known placeholder; production refuses it"]
    return ()
