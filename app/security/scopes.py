"""Scopes: what an access token (or an API key) may do beyond being its user.

A user's scopes follow from its role, decided when a token is issued and carried in the token's
`scope` claim (space-separated, RFC 8693); `RequireScopes` (app/api/auth.py) also checks the live
role, so a token cannot outlive a demotion even in the instant before its revocation arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

ADMIN = "admin"
#: Every scope the service knows (request models validate against this type).
Scope = Literal["admin"]
KNOWN = frozenset(get_args(Scope))

_BY_ROLE: dict[str, frozenset[str]] = {"admin": frozenset({ADMIN}), "user": frozenset()}


def for_role(role: str) -> frozenset[str]:
    return _BY_ROLE.get(role, frozenset())


def claim(scopes: Iterable[str]) -> str:
    """The `scope` claim: sorted, space-separated (empty for none)."""
    return " ".join(sorted(set(scopes)))


def parse(value: object) -> frozenset[str]:
    return frozenset(value.split()) if isinstance(value, str) else frozenset()
