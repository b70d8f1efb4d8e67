"""Error responses that never echo input and never leak internals.

FastAPI's default 422 body repeats the offending `input` (a password, a token) and `ctx`; ours
keeps only where and why. Unhandled errors become a generic 500 JSON with no traceback.
Dependency outages (database, Redis) are 503: the client may retry, nothing failed open.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.security.errors import Overloaded, RateLimited, Unavailable

logger = logging.getLogger("app.errors")


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [part for part in error.get("loc", ())],
                "msg": error.get("msg", "invalid value"),
                "type": error.get("type", "value_error"),
            }
        )
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def _unavailable(request: Request, dependency: str, cause: Exception) -> JSONResponse:
    logger.warning(
        "%s unavailable (%s) while serving %s %s",
        dependency,
        type(cause).__name__,
        request.method,
        request.url.path,
    )
    return JSONResponse(
        {"detail": "Service temporarily unavailable"}, status_code=503, headers={"Retry-After": "1"}
    )


async def _service_unavailable(request: Request, exc: Exception) -> JSONResponse:
    dependency = exc.dependency if isinstance(exc, Unavailable) else "dependency"
    return _unavailable(request, dependency, exc)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, PoolTimeoutError | OperationalError) or _is_connection_error(exc):
        return _unavailable(request, "database", exc)
    return await _unhandled(request, exc)


def _is_connection_error(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or isinstance(exc.orig, OSError | TimeoutError)


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable(request, "redis", exc)


async def _unreachable(request: Request, exc: Exception) -> JSONResponse:
    # asyncpg raises OSError/ConnectionRefusedError when it cannot reach the server.
    return _unavailable(request, "dependency", exc)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled %s while serving %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        {"detail": "Too many attempts; try again later"},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded)
    logger.warning("shed %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "Service busy; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Unavailable, _service_unavailable)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OSError, _unreachable)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(Exception, _unhandled)
