"""`Annotated` dependency aliases: what a route declares to get a resource or the caller.

Every alias reads the lifespan's `Resources` through `app.resources.resources_of`, so a route
never touches `app.state` and a test can see exactly what a route uses from its signature.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import (
    AuthenticatedUser,
    CurrentClaims,
    CurrentUser,
    SessionClaims,
    SessionUser,
    current_claims,
    current_user,
    unauthorized,
)
from app.config import Settings
from app.mail import Mailer
from app.resources import Resources, resources_of
from app.secrets import SecretStore
from app.security.runtime import Security


def get_resources(request: Request) -> Resources:
    return resources_of(request)


def get_settings(request: Request) -> Settings:
    return resources_of(request).settings


def get_store(request: Request) -> SecretStore:
    return resources_of(request).store


def get_redis(request: Request) -> Redis:
    return resources_of(request).redis


def get_security(request: Request) -> Security:
    return resources_of(request).security


def client_address(request: Request) -> str | None:
    """The client's IP address: the TCP peer, or what a trusted proxy (`FORWARDED_ALLOW_IPS`)
    says it forwarded for; a spoofed `X-Forwarded-For` from anyone else is ignored."""
    return request.client.host if request.client is not None else None


def get_mailer(request: Request) -> Mailer:
    return resources_of(request).mailer


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with resources_of(request).sessionmaker() as session:
        yield session


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[SecretStore, Depends(get_store)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SecurityDep = Annotated[Security, Depends(get_security)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ClientAddress = Annotated[str | None, Depends(client_address)]
#: Queue a mail (`mailer.enqueue(...)`): returns at once, sent by the lifespan's worker.
MailerDep = Annotated[Mailer, Depends(get_mailer)]

__all__ = [
    "AuthenticatedUser",
    "ClientAddress",
    "CurrentClaims",
    "CurrentUser",
    "MailerDep",
    "RedisDep",
    "ResourcesDep",
    "SecurityDep",
    "SessionClaims",
    "SessionDep",
    "SessionUser",
    "SettingsDep",
    "StoreDep",
    "current_claims",
    "current_user",
    "unauthorized",
]
