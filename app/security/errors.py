"""Domain errors of the security layer. It knows nothing of HTTP: `app.api.errors` maps these
to responses (503 for `Unavailable`)."""

from __future__ import annotations


class Unavailable(Exception):
    """Something needed to answer safely is missing right now (no key may sign, no key ring):
    the caller must refuse (503), never guess."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(f"{dependency} unavailable")
