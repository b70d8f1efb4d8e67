"""`?name=value` options after a reference's path (e.g. `aws-sm://prod/db?stage=AWSPREVIOUS`).

None of the backends allow `?` in a secret name, so the suffix is unambiguous.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from app.secrets.errors import SecretFetchError


def split_options(path: str, allowed: frozenset[str]) -> tuple[str, dict[str, str]]:
    base, sep, query = path.partition("?")
    if not sep:
        return base, {}
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise SecretFetchError(f"unknown reference option(s) {', '.join(unknown)}; known: {known}")
    return base, options
