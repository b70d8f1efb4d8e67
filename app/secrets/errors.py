"""Configuration problems, reported one line each, naming the setting and never its value."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    setting: str
    origin: str
    message: str

    def __str__(self) -> str:
        if not self.origin:
            where = ""
        elif self.origin.startswith("searched "):  # nothing was found: say where we looked
            where = f" ({self.origin})"
        else:
            where = f" (from {self.origin})"
        return f"{self.setting}{where}: {self.message}"


class ConfigError(Exception):
    """Startup must stop: one or more settings are unusable."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [f"config error: {p}" for p in self.problems]


class SecretFetchError(Exception):
    """A source could not produce a value. The message must never contain the value."""

    kind = "error"


class SecretNotFound(SecretFetchError):
    kind = "not found"


class SecretAccessDenied(SecretFetchError):
    kind = "access denied"


class SecretUnreachable(SecretFetchError):
    kind = "unreachable"
