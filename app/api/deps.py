"""`Annotated` dependency aliases. Everything comes from `app.state`, owned by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.secrets import SecretStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> SecretStore:
    store: SecretStore = request.app.state.secrets
    return store


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[SecretStore, Depends(get_store)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


# Bearer authentication, reusable by any router (the bench mounts a protected no-op with it).
from app.security.http import (  # noqa: E402
    AuthenticatedUser,
    CurrentClaims,
    CurrentUser,
    current_claims,
    current_user,
)

__all__ = [
    "AuthenticatedUser",
    "CurrentClaims",
    "CurrentUser",
    "RedisDep",
    "SessionDep",
    "SettingsDep",
    "StoreDep",
    "current_claims",
    "current_user",
]
