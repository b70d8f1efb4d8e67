"""Values that pass each secret's validation, a clean environment for Settings(), and a
secret file rewritten the way a rotation job does it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from app.config import SECRET_SETTINGS


def valid_value(setting: str, tag: str = "") -> str:
    """A value `setting` accepts in every environment; `tag` makes it recognisable."""
    token = f"{tag}{secrets.token_urlsafe(40)}"
    if setting == "DATABASE_CREDENTIALS":
        return json.dumps({"username": "app", "password": token})
    return token


def clear_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret, `_FILE`, SECRETS_DIR or APP_ENV inherited from the developer's shell."""
    for key in list(os.environ):
        upper = key.upper()
        if upper.startswith(("APP_ENV", "SECRETS_")) or any(
            upper in (name, f"{name}_FILE") for name in SECRET_SETTINGS
        ):
            monkeypatch.delenv(key)


def write_atomically(path: Path, value: str) -> None:
    """Stage the new value beside the file and rename it over (readers never see half a value)."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(value + "\n")
    os.replace(staged, path)
