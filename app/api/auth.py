"""Authentication as FastAPI dependencies, reusable by any router: access tokens and API keys.

A request authenticates with ONE of:
- `Authorization: Bearer <access token>` (a JWT from the login);
- `Authorization: Bearer <API key>` or `X-API-Key: <API key>` (`fst_...`, told apart from a JWT
  by its prefix alone): the key's owner, with the key's scopes cut down to what the owner's role
  grants now. `CurrentUser`, `CurrentClaims` and `RequireScopes` accept both, so a key works on
  every route a token with the same scopes may call;
- except the routes that manage credentials (`SessionUser` / `SessionClaims`: logout, password
  change, account deletion, MFA, API keys). A key there is a 403: a leaked key must not mint
  longer-lived keys, turn MFA on against its owner, or pass for a session.
Only headers are read: tokens in query strings or cookies are ignored. Sending both an
`Authorization` credential and `X-API-Key` is refused rather than guessed. Every failure is the
same 401 (with `WWW-Authenticate: Bearer`); a dependency outage is a 503.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param

from app.keys.signing import TokenRejected
from app.resources import Resources, resources_of
from app.security import api_keys, scopes
from app.security.tokens import AccessClaims
from app.user_status import UserStatus

LOGIN_PATH = "/api/v1/auth/login"
NOT_AUTHENTICATED = "Not authenticated"
API_KEY_HEADER = "x-api-key"  # pragma: allowlist secret - a header name
SESSION_REQUIRED = "API keys cannot manage credentials: use an access token from the login"


def unauthorized(detail: str = NOT_AUTHENTICATED) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _session_required() -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=SESSION_REQUIRED)


async def _authenticate(request: Request, *, keys: bool) -> tuple[AccessClaims, UserStatus | None]:
    """The request's claims; for an API key also its owner (already checked: exists, active).
    `keys=False`: a valid key is a 403 (credential management wants a session)."""
    resources = resources_of(request)
    authorization = request.headers.get("authorization")
    scheme, credential = get_authorization_scheme_param(authorization)
    bearer = credential if scheme.lower() == "bearer" and credential else None
    header_key = request.headers.get(API_KEY_HEADER)
    if header_key is not None:
        if authorization:
            raise unauthorized()  # two credentials: refuse rather than pick one
        return await _api_key(resources, header_key, keys=keys)
    if bearer is None:
        raise unauthorized()
    if api_keys.looks_like_key(bearer):
        return await _api_key(resources, bearer, keys=keys)
    try:
        return await resources.security.tokens.authenticate(bearer), None
    except TokenRejected:
        raise unauthorized() from None


async def _api_key(
    resources: Resources, key: str, *, keys: bool
) -> tuple[AccessClaims, UserStatus]:
    try:
        verified = await resources.security.api_keys.authenticate(resources.sessionmaker, key)
    except TokenRejected:
        raise unauthorized() from None
    owner = await resources.users.lookup(verified.record.sub)
    if owner is None or not owner.is_active:
        raise unauthorized()
    if not keys:
        raise _session_required()
    return verified.claims(scopes.for_role(owner.role)), owner


class _BearerDependency(OAuth2PasswordBearer):
    """The OAuth2 password-flow scheme (so Swagger's "Authorize" button works) that also does
    the check itself: FastAPI solves every nested dependency on every request, and on a cached
    token that solving is a measurable share of the cost, so auth is ONE dependency level."""

    def __init__(self, *, keys: bool = True) -> None:
        super().__init__(tokenUrl=LOGIN_PATH, scheme_name="OAuth2PasswordBearer", auto_error=False)
        self.keys = keys


class _CurrentClaims(_BearerDependency):
    """Valid, unrevoked claims. An access token needs no database access; an API key's owner is
    checked through the user status cache (a deleted or disabled owner's key is refused)."""

    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        claims, _ = await _authenticate(request, keys=self.keys)
        return claims


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
        """What this request may do: the token's (or key's) scopes that the live role still
        grants."""
        return self.claims.scopes & scopes.for_role(self.role)

    @property
    def api_key_id(self) -> str | None:
        """The API key the request authenticated with, None for an access token."""
        return self.claims.api_key_id


class _CurrentUser(_BearerDependency):
    """The token's (or key's) user, who must still exist and be active, checked on every
    request.

    The answer comes from the replica's user cache while its NOTIFY listener is live (a disable
    or delete reaches it within milliseconds), otherwise from the database.
    """

    async def __call__(self, request: Request) -> AuthenticatedUser:  # type: ignore[override]
        claims, found = await _authenticate(request, keys=self.keys)
        if found is None:
            found = await resources_of(request).users.lookup(claims.sub)
            if found is None or not found.is_active:
                raise unauthorized()
        return AuthenticatedUser(
            found.id, found.email, found.role, found.email_verified, claims, found.mfa_enabled
        )


#: Valid, unrevoked claims of an access token or an API key.
current_claims = _CurrentClaims()
#: The active user behind a valid access token or API key.
current_user = _CurrentUser()
#: The same for an access token only (an API key is a 403): routes managing credentials.
session_claims = _CurrentClaims(keys=False)
session_user = _CurrentUser(keys=False)

CurrentClaims = Annotated[AccessClaims, Depends(current_claims)]
CurrentUser = Annotated[AuthenticatedUser, Depends(current_user)]
SessionClaims = Annotated[AccessClaims, Depends(session_claims)]
SessionUser = Annotated[AuthenticatedUser, Depends(session_user)]


class RequireScopes:
    """`Depends(RequireScopes("admin"))`: the current user, with every one of `required` granted
    by both the token (or API key) and the live role; 403 otherwise (401 without a valid
    credential)."""

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
