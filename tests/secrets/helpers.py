"""Values that pass each secret's validation, a clean environment for Settings(), and a
secret file rewritten the way a rotation job does it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from app.config import SECRETS
from app.secrets import CheckContext


def valid_value(setting: str, tag: str = "") -> str:
    """A value the declared secret `setting` accepts in every environment, derived from its
    declaration: a random token (tagged with `tag`, so a test can recognise it) if it parses,
    else `{"username", "password"}` credentials, else the declaration's own generator."""
    spec = SECRETS.get(setting)
    assert spec is not None, f"{setting} is not a declared secret"
    token = f"{tag}{secrets.token_urlsafe(40)}"
    candidates = [token, json.dumps({"username": "app", "password": token})]
    if spec.generate is not None:
        candidates.append(spec.generate())
    production = CheckContext(production=True)
    for candidate in candidates:
        try:
            parsed = spec.parse(candidate)
        except ValueError:
            continue
        if not spec.check(parsed, production):
            return candidate
    raise AssertionError(f"give {setting} a `generate` in its declaration so tests can make one")


def clear_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret, `_FILE`, SECRETS_DIR or APP_ENV inherited from the developer's shell."""
    declared = SECRETS.variables()
    for key in list(os.environ):
        upper = key.upper()
        if upper.startswith(("APP_ENV", "SECRETS_")) or upper in declared:
            monkeypatch.delenv(key)


def write_atomically(path: Path, value: str) -> None:
    """Stage the new value beside the file and rename it over (readers never see half a value)."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(value + "\n")
    os.replace(staged, path)
