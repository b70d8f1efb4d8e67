"""What every router shares: the responses FastAPI itself may give, and response headers.

A route that reads a JSON (or form) body can also answer 400 when the body cannot be parsed at
all, before validation; declaring it keeps the OpenAPI document true, which the contract fuzz
test (tests/contract) checks. Build routers that take bodies with `body_router()`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

#: FastAPI's answer to a body it cannot parse (malformed JSON, a broken multipart form).
UNPARSABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body could not be parsed"}
}

#: Responses carrying credentials or personal data must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def body_router(prefix: str, tags: list[str]) -> APIRouter:
    """An `APIRouter` whose routes document the 400 of an unparsable body."""
    return APIRouter(prefix=prefix, tags=list(tags), responses=UNPARSABLE_BODY)
