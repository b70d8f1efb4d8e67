"""FastAPI dependencies for bearer authentication, reusable by any router.

Only the `Authorization: Bearer` header is read: tokens in query strings or cookies are ignored.
Every failure is the same 401 (with `WWW-Authenticate: Bearer`); a dependency outage is a 503.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from app.security.keyring import TokenRejected
from app.security.runtime import Security
from app.security.tokens import AccessClaims
from app.security.users_cache import UserDirectory

#: Declares the OAuth2 password flow in OpenAPI so Swagger's "Authorize" button works.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)

NOT_AUTHENTICATED = "Not authenticated"


def unauthorized(detail: str = NOT_AUTHENTICATED) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail,
                         headers={"WWW-Authenticate": "Bearer"})


def get_security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


async def _authenticate(request: Request, token: str | None) -> AccessClaims:
    if not token:
        raise unauthorized()
    security: Security = request.app.state.security
    try:
        return await security.tokens.authenticate(token)
    except TokenRejected:
        raise unauthorized() from None


async def current_claims(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AccessClaims:
    return await _authenticate(request, token)


CurrentClaims = Annotated[AccessClaims, Depends(current_claims)]


@dataclass(frozen=True)
class AuthenticatedUser:
    id: uuid.UUID
    email: str
    claims: AccessClaims


async def current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AuthenticatedUser:
    """The token's user, who must still exist and be active, checked on every request.

    The answer comes from the replica's user cache while its NOTIFY listener is live (a disable
    or delete reaches it within milliseconds), otherwise from the database. It authenticates
    the token itself rather than depending on `current_claims`: one level less of FastAPI
    dependency solving is a measurable share of a cached request's cost.
    """
    claims = await _authenticate(request, token)
    users: UserDirectory = request.app.state.users
    status = await users.lookup(claims.sub)
    if status is None or not status.is_active:
        raise unauthorized()
    return AuthenticatedUser(status.id, status.email, claims)


CurrentUser = Annotated[AuthenticatedUser, Depends(current_user)]
