"""Secrets: sources, references, the store that holds current values, and their refresh."""

from app.secrets.errors import ConfigError, ConfigProblem
from app.secrets.store import SecretEntry, SecretStore

__all__ = ["ConfigError", "ConfigProblem", "SecretEntry", "SecretStore"]
