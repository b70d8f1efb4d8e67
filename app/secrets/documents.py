"""JSON documents inside secret values: `#json-key` selection and whole-object parsing. Errors
name the key or the problem, never the value."""

from __future__ import annotations

import json
from typing import Any

from app.secrets.errors import SecretFetchError, SecretNotFound
from app.secrets.provider import Reference


def select_json_key(raw: str, reference: Reference) -> str:
    """Apply `#json-key`: the secret must be a JSON object holding that key."""
    if reference.json_key is None:
        return raw
    try:
        document = json.loads(raw)
    except ValueError:
        raise SecretFetchError("value is not JSON, so #key cannot select from it") from None
    if not isinstance(document, dict) or reference.json_key not in document:
        raise SecretNotFound(f"JSON key {reference.json_key!r} not present in the secret")
    selected = document[reference.json_key]
    return selected if isinstance(selected, str) else json.dumps(selected)


def json_object(raw: str, problem: str) -> dict[str, Any]:
    """`raw` parsed as a JSON object; otherwise SecretFetchError(`problem`), which must not
    quote `raw` (it is a secret)."""
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretFetchError(problem)
    return document
