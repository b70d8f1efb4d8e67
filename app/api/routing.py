"""What every router shares: the responses FastAPI itself may give, and response headers.

A route that reads a JSON (or form) body can also answer 400 when the body cannot be parsed at
all, before validation; declaring it keeps the OpenAPI document true, which the contract fuzz
test (tests/contract) checks. Build routers that take bodies with `body_router()`.

Some refusals depend on state no schema can express: a wrong TOTP code, a used or unknown
mailed token, scopes the caller does not hold. Name their statuses with
`openapi_extra=refuses_valid_input(400)`: the OpenAPI document then says that a well-formed
request may still get that answer, and the contract test does not count it as a schema-valid
request wrongly refused.
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


#: The OpenAPI extension `refuses_valid_input` writes (read by tests/contract).
REFUSES_VALID_INPUT = "x-refuses-valid-input"


def refuses_valid_input(*statuses: int) -> dict[str, Any]:
    """`openapi_extra` for an operation that refuses some schema-valid requests with `statuses`
    (each must also be documented in its `responses`)."""
    return {REFUSES_VALID_INPUT: sorted(statuses)}


def body_router(prefix: str, tags: list[str]) -> APIRouter:
    """An `APIRouter` whose routes document the 400 of an unparsable body."""
    return APIRouter(prefix=prefix, tags=list(tags), responses=UNPARSABLE_BODY)
