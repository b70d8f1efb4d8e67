"""The provider interface every secret backend implements, and the reference it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Reference:
    """`<scheme>://<path>[#<json_key>]`: configuration, not a secret (errors may show it)."""

    scheme: str
    path: str
    json_key: str | None = None

    def __str__(self) -> str:
        suffix = f"#{self.json_key}" if self.json_key else ""
        return f"{self.scheme}://{self.path}{suffix}"


@dataclass(frozen=True, repr=False)
class Fetched:
    """A value read from a backend, and the backend's version id for it when it has one.

    `ttl` is set for leased values (e.g. Vault dynamic database credentials): the seconds, from
    the fetch, during which the value stays valid. The store refreshes such a value well before
    it expires, whatever `SECRETS_REFRESH_SECONDS` says.
    """

    value: str
    version: str | None = None
    ttl: float | None = None

    def __repr__(self) -> str:  # never the value
        return f"Fetched(version={self.version!r})"


class SecretProvider(Protocol):
    """Reads one reference. Implementations must not block the event loop and must raise a
    `SecretFetchError` subclass (never a message containing the value) on failure."""

    async def fetch(self, reference: Reference) -> Fetched: ...

    async def aclose(self) -> None: ...
