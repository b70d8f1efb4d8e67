"""Liveness and readiness, as orchestrators expect them.

`live` never touches a dependency (a DB outage must not get every pod restarted); `ready` checks
PostgreSQL and Redis with short timeouts so a probe never hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.deps import ResourcesDep
from app.resources import Resources

router = APIRouter(prefix="/health", tags=["health"])
logger = logging.getLogger("app.health")

CHECK_TIMEOUT_SECONDS = 2.0

CheckStatus = Literal["ok", "error", "timeout"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok", "error"]
    checks: dict[str, CheckStatus]


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    return Liveness()


async def _check(name: str, probe: Awaitable[object]) -> CheckStatus:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        logger.warning("readiness check %s timed out", name)
        return "timeout"
    except Exception as exc:
        logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return "error"
    return "ok"


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _database(resources: Resources) -> CheckStatus:
    """While the user status cache's LISTEN connection is live, PostgreSQL answered its ping
    within the last few seconds: that is the answer, and the probe takes no pooled connection,
    so a flood of requests holding the whole pool cannot make a healthy replica look unready."""
    if resources.users.is_live:
        return "ok"
    return await _check("database", _ping_database(resources.engine))


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is failing"}},
)
async def ready(resources: ResourcesDep) -> JSONResponse:
    database, redis = await asyncio.gather(
        _database(resources),
        _check("redis", resources.redis.ping()),
    )
    body = Readiness(
        status="ok" if database == redis == "ok" else "error",
        checks={"database": database, "redis": redis},
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)
