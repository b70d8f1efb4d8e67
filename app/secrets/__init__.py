"""Secrets: declarations, sources, references, the store that holds current values, and their
refresh. This package imports nothing else of the app (see `app/secrets/spec.py`)."""

from app.secrets.errors import ConfigError, ConfigProblem
from app.secrets.spec import CheckContext, SecretInput, SecretRegistry, SecretsConfig, SecretSpec
from app.secrets.store import SecretEntry, SecretStore

__all__ = [
    "CheckContext",
    "ConfigError",
    "ConfigProblem",
    "SecretEntry",
    "SecretInput",
    "SecretRegistry",
    "SecretSpec",
    "SecretStore",
    "SecretsConfig",
]
