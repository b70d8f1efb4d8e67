"""The app under benchmark: the real `create_app()` plus a bench-only router, mounted here and
nowhere else. The protected no-op uses the app's REAL bearer dependency (`CurrentClaims`:
signature, claims, revocation), so target 1 measures exactly what a protected route pays."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.api.deps import CurrentClaims
from app.api.routing import add_routes
from app.config import Settings
from app.main import create_app
from app.secrets import SecretStore

UNPROTECTED = "/bench/noop"
PROTECTED = "/bench/protected-noop"

router = APIRouter(include_in_schema=False)


@router.get(UNPROTECTED)
async def noop() -> dict[str, bool]:
    return {"ok": True}


@router.get(PROTECTED)
async def protected_noop(claims: CurrentClaims) -> dict[str, bool]:
    return {"ok": True}


def create_bench_app(
    settings: Settings | None = None, *, store: SecretStore | None = None
) -> FastAPI:
    app = create_app(settings, store=store)
    add_routes(app, router)
    return app
