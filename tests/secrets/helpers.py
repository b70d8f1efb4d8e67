"""Values that pass each secret's validation, and a clean environment for Settings()."""

from __future__ import annotations

import json
import os
import secrets

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
