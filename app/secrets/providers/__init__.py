"""Secret providers: one module per backend behind the `SecretProvider` interface.

Cloud providers import their SDK lazily, inside `create_provider`, so the base install needs none.
"""

from app.secrets.provider import Fetched, SecretProvider

__all__ = ["Fetched", "SecretProvider"]
