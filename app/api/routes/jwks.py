"""`/.well-known/jwks.json`: the public half of every asymmetric key in the ring.

HMAC keys are secrets and are never published (an HMAC-only ring gives `{"keys": []}`); private
members are never included. Clients may cache the set no longer than the secret refresh
interval, so a newly added key is visible to them before it starts signing.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ResourcesDep

router = APIRouter(tags=["jwks"])


@router.get("/.well-known/jwks.json")
async def jwks(resources: ResourcesDep) -> JSONResponse:
    max_age = max(int(resources.settings.secrets_refresh_seconds), 0)
    return JSONResponse(
        resources.security.tokens.ring().public_jwks(),
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )
