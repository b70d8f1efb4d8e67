"""A test-only router with a route that reads the `users` table through the app's own session
dependency, so fault tests exercise the real pool, timeouts and error mapping."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from app.api.deps import SessionDep
from app.config import Settings
from app.main import create_app

PROBE_PATH = "/_faults/users/count"

router = APIRouter()


@router.get(PROBE_PATH)
async def count_users(session: SessionDep) -> dict[str, int]:
    count = (await session.execute(text("SELECT count(*) FROM users"))).scalar_one()
    return {"users": int(count)}


def app_with_probe(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.include_router(router)
    return app
