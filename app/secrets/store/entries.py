"""What the store holds for a secret, and what a failed read looks like."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


@dataclass(frozen=True, repr=False)
class SecretEntry:
    """The current value of one secret: raw, parsed (by its declaration, once per value), and
    where it came from. `ttl` is set for leased values: seconds of validity from `loaded_at`."""

    setting: str
    value: SecretStr
    parsed: Any = field(compare=False)
    source: str
    origin: str
    version: str | None
    loaded_at: float
    ttl: float | None = None

    def __repr__(self) -> str:  # never the value, raw or parsed
        return (
            f"SecretEntry(setting={self.setting!r}, source={self.source!r}, "
            f"origin={self.origin!r}, version={self.version!r})"
        )


@dataclass(frozen=True)
class FetchFailure:
    """A read or validation that did not produce a usable value. `reason` is one line that
    never contains the value."""

    setting: str
    origin: str
    reason: str


#: Audit event names the store emits (identifiers and metadata only, never values).
SECRET_LOADED = "secret.loaded"  # noqa: S105  # pragma: allowlist secret
SECRET_ROTATED = "secret.rotated"  # noqa: S105  # pragma: allowlist secret
SECRET_REFRESH_FAILED = "secret.refresh_failed"  # noqa: S105  # pragma: allowlist secret
