"""Secret declarations: what a secret IS, declared once, and what the rest derives from it.

A `SecretSpec` names a secret and says how its value is parsed, what production refuses, whether
it follows rotations, and how development makes one. `app/config.py` declares the project's
secrets in one `SecretRegistry`; from it derive the `X` / `X_FILE` / `SECRETS_DIR` / reference
binding, the store's parsed values, `config check`, `secrets init`, log redaction, and the tests
that check precedence, leaks and the deploy files. Adding a secret is one declaration.

This package imports nothing else of the app: the settings it needs are described by the
`SecretsConfig` protocol below, which `app.config.Settings` satisfies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import SecretStr

T = TypeVar("T")

_NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")


@dataclass(frozen=True)
class CheckContext:
    """What a value check may depend on (never the value's source)."""

    production: bool


def _no_checks(parsed: Any, context: CheckContext) -> Sequence[str]:
    return ()


@dataclass(frozen=True, kw_only=True, eq=False)
class SecretSpec(Generic[T]):
    """One declared secret. Every field without a default must be given, so a half-written
    declaration fails when the module declaring it is imported.

    - `parse` turns the raw text into the value consumers use (a key ring, credentials); it
      raises `ValueError` with a message that never quotes the value. It runs once per new value
      (at startup and on each rotation), never per request.
    - `check` returns problems with a parsed value (production strength rules); an empty result
      accepts it. A rotated value with problems is refused and the last good one kept.
    - `required=True`: startup fails without it, except that a development process generates
      a missing one (with a warning). `required="production"`: only production requires it;
      development AND test processes generate a missing one (with a warning). For secrets whose
      absence would switch a feature off rather than break it (the data-key ring: without it
      nothing could be sealed), while a throwaway value is fine for a local run or a test.
    - `generate` makes a strong development value: `secrets init` writes one for every secret
      that has it, and a process generates missing REQUIRED ones as said above.
    - `hot_reload=False` reads the value once at startup (the refresher leaves it alone).
    """

    name: str
    description: str
    parse: Callable[[str], T]
    check: Callable[[T, CheckContext], Sequence[str]] = _no_checks
    required: bool | Literal["production"] = False
    hot_reload: bool = True
    generate: Callable[[], str] | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"secret name {self.name!r} must be UPPER_SNAKE_CASE")
        if self.name.endswith("_FILE"):
            raise ValueError(f"secret name {self.name!r} must not end in _FILE (that is its path)")
        if not callable(self.parse):
            raise TypeError(f"secret {self.name}: parse must be callable")
        if self.required not in (True, False, "production"):
            raise ValueError(f"secret {self.name}: required must be True, False or 'production'")
        if self.required == "production" and self.generate is None:
            # Outside production it is generated when missing: it needs a generator.
            raise ValueError(f"secret {self.name}: required='production' needs `generate`")

    def required_in(self, production: bool) -> bool:
        """Whether a process in this environment must have the secret (before generating)."""
        return self.required is True or (self.required == "production" and production)

    def generated_in(self, app_env: str) -> bool:
        """Whether a missing required secret is generated in `app_env` (never in production)."""
        if self.generate is None or app_env == "production":
            return False
        if self.required == "production":
            return True
        return self.required is True and app_env == "development"

    @property
    def file_variable(self) -> str:
        """`X_FILE`: the variable holding a path to the value."""
        return f"{self.name}_FILE"

    @property
    def file_name(self) -> str:
        """The file named after the secret in `SECRETS_DIR` (and in `secrets init`'s directory)."""
        return self.name.lower()

    def __repr__(self) -> str:
        return f"SecretSpec({self.name})"


class SecretRegistry(Sequence[SecretSpec[Any]]):
    """The declared secrets, in declaration order; names are unique."""

    def __init__(self, *specs: SecretSpec[Any]) -> None:
        by_name: dict[str, SecretSpec[Any]] = {}
        for spec in specs:
            if spec.name in by_name:
                raise ValueError(f"secret {spec.name} is declared twice")
            by_name[spec.name] = spec
        self._specs = tuple(specs)
        self._by_name = by_name

    def __getitem__(self, index: Any) -> Any:
        return self._specs[index]

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[SecretSpec[Any]]:
        return iter(self._specs)

    def __contains__(self, item: object) -> bool:
        return item in self._by_name or item in self._specs

    def get(self, name: str) -> SecretSpec[Any] | None:
        return self._by_name.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def variables(self) -> frozenset[str]:
        """Every environment variable the registry reads: `X` and `X_FILE` for each secret."""
        return frozenset(v for s in self._specs for v in (s.name, s.file_variable))

    def __repr__(self) -> str:
        return f"SecretRegistry({', '.join(self._by_name)})"


@dataclass(frozen=True)
class SecretInput:
    """How a secret was configured: `X` (a value or a reference) and/or `X_FILE` (a path)."""

    value: SecretStr | None = field(default=None)
    file: Path | None = None


class SecretsConfig(Protocol):
    """The settings the secrets layer reads (`app.config.Settings` provides them)."""

    @property
    def app_env(self) -> str: ...

    @property
    def is_production(self) -> bool: ...

    @property
    def secrets_dir(self) -> str: ...

    @property
    def secrets_dirs(self) -> list[Path]: ...

    @property
    def secrets_refresh_seconds(self) -> float: ...

    @property
    def secrets_fetch_timeout_seconds(self) -> float: ...

    @property
    def database_url(self) -> str: ...

    def secret_input(self, name: str) -> SecretInput: ...


__all__ = [
    "CheckContext",
    "SecretInput",
    "SecretRegistry",
    "SecretSpec",
    "SecretsConfig",
]
