"""Domain errors of the security layer. It knows nothing of HTTP: `app.api.errors` maps these
to responses (503 for `Unavailable`)."""

from __future__ import annotations


class Unavailable(Exception):
    """Something needed to answer safely is missing right now (no key may sign, no key ring):
    the caller must refuse (503), never guess."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(f"{dependency} unavailable")


class RateLimited(Exception):
    """Too many attempts; the caller may retry after `retry_after` seconds (429)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"retry after {retry_after}s")


class Overloaded(Exception):
    """Work was shed instead of queued (the password hashing queue is full): 503, retry soon."""

    def __init__(self, what: str, retry_after: int = 1) -> None:
        self.what = what
        self.retry_after = retry_after
        super().__init__(f"{what} overloaded")
