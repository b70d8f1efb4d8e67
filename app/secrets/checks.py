"""Building blocks for secret declarations: parsers, production checks and dev generators that
several secrets share. Messages name the problem, never the value.
"""

from __future__ import annotations

import json
import math
import secrets
from collections import Counter
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


#: Bits a random credential must carry in production (by the estimate below).
MIN_ENTROPY_BITS = 128


def estimated_bits(value: str | bytes) -> float:
    """Shannon entropy of the value's own symbol frequencies, times its length: a generous
    estimate (it cannot see patterns), so whatever it refuses is certainly weak: `aaaa...`,
    a short word repeated, a keyboard walk."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    per_symbol = -sum(n / total * math.log2(n / total) for n in counts.values())
    return per_symbol * total


def strength_problems(value: str | bytes, min_length: int, what: str = "characters") -> list[str]:
    if len(value) < min_length:
        return [f"is shorter than {min_length} {what}"]
    if estimated_bits(value) < MIN_ENTROPY_BITS:
        return [f"has too little entropy (under {MIN_ENTROPY_BITS} bits); generate a random one"]
    return []


# ---- plain text secrets (passwords, tokens) ------------------------------------------------


def text(value: str) -> str:
    """A plain secret is its text; the store has already refused an empty one."""
    return value


def not_placeholder(value: str, context: CheckContext) -> Sequence[str]:
    if context.production and is_placeholder(value):
        return ["is a known placeholder value; production refuses it"]
    return ()


def strong_token(value: str, context: CheckContext) -> Sequence[str]:
    """A bearer token compared as is (METRICS_TOKEN): production wants >= 32 random chars."""
    if not context.production:
        return ()
    if is_placeholder(value):
        return ["is a known placeholder value; production refuses it"]
    return strength_problems(value, 32)


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
