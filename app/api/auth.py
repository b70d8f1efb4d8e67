"""Bearer authentication as FastAPI dependencies, reusable by any router.

Only the `Authorization: Bearer` header is read: tokens in query strings or cookies are ignored.
Every failure is the same 401 (with `WWW-Authenticate: Bearer`); a dependency outage is a 503.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from app.keys.signing import TokenRejected
from app.resources import resources_of
from app.security import scopes
from app.security.tokens import AccessClaims

LOGIN_PATH = "/api/v1/auth/login"
NOT_AUTHENTICATED = "Not authenticated"


def unauthorized(detail: str = NOT_AUTHENTICATED) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def _authenticate(request: Request, token: str | None) -> AccessClaims:
    if not token:
        raise unauthorized()
    try:
        return await resources_of(request).security.tokens.authenticate(token)
    except TokenRejected:
        raise unauthorized() from None


class _BearerDependency(OAuth2PasswordBearer):
    """The OAuth2 password-flow scheme (so Swagger's "Authorize" button works) that also does
    the check itself: FastAPI solves every nested dependency on every request, and on a cached
    token that solving is a measurable share of the cost, so auth is ONE dependency level."""

    def __init__(self) -> None:
        super().__init__(tokenUrl=LOGIN_PATH, scheme_name="OAuth2PasswordBearer", auto_error=False)

    async def bearer_token(self, request: Request) -> str | None:
        return await OAuth2PasswordBearer.__call__(self, request)


class _CurrentClaims(_BearerDependency):
    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        return await _authenticate(request, await self.bearer_token(request))


@dataclass(frozen=True)
class AuthenticatedUser:
    id: uuid.UUID
    email: str
    role: str
    email_verified: bool
    claims: AccessClaims
    mfa_enabled: bool = False

    @property
    def scopes(self) -> frozenset[str]:
        """What this request may do: the token's scopes that the live role still grants."""
        return self.claims.scopes & scopes.for_role(self.role)


class _CurrentUser(_BearerDependency):
    """The token's user, who must still exist and be active, checked on every request.

    The answer comes from the replica's user cache while its NOTIFY listener is live (a disable
    or delete reaches it within milliseconds), otherwise from the database.
    """

    async def __call__(self, request: Request) -> AuthenticatedUser:  # type: ignore[override]
        claims = await _authenticate(request, await self.bearer_token(request))
        found = await resources_of(request).users.lookup(claims.sub)
        if found is None or not found.is_active:
            raise unauthorized()
        return AuthenticatedUser(
            found.id, found.email, found.role, found.email_verified, claims, found.mfa_enabled
        )


#: Valid, unrevoked access-token claims; no database access.
current_claims = _CurrentClaims()
#: The active user behind a valid access token.
current_user = _CurrentUser()

CurrentClaims = Annotated[AccessClaims, Depends(current_claims)]
CurrentUser = Annotated[AuthenticatedUser, Depends(current_user)]


class RequireScopes:
    """`Depends(RequireScopes("admin"))`: the current user, with every one of `required` granted
    by both the token and the live role; 403 otherwise (401 without a valid token)."""

    def __init__(self, *required: str) -> None:
        unknown = set(required) - scopes.KNOWN
        if unknown:
            raise ValueError(f"unknown scopes: {sorted(unknown)}")
        self.required = frozenset(required)

    async def __call__(self, user: CurrentUser) -> AuthenticatedUser:
        if not self.required <= user.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Insufficient scope")
        return user


#: The current user, holding the `admin` scope.
AdminUser = Annotated[AuthenticatedUser, Depends(RequireScopes(scopes.ADMIN))]
