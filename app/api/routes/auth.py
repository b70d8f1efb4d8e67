"""`/api/v1/auth`: register, login (OAuth2 token endpoint), refresh, logout (SPEC section 3).

Failures never say which part was wrong: unknown account and wrong password get the same 401
body after the same amount of argon2 work, and bodies never echo what the client sent. Abuse is
refused before any expensive work: per-client-IP limits first (`RATE_LIMIT_*`), then the
per-account limit, which counts an attempt BEFORE its password is checked
(`app.security.login_limit`); the password hashing queue is bounded (503 past it), and no
database connection is held while argon2 runs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Form, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, field_validator

from app.api.cookies import clear_refresh_cookie, cookie_token, set_refresh_cookie
from app.api.deps import (
    ClientAddress,
    ResourcesDep,
    SecurityDep,
    SessionClaims,
    SessionDep,
    unauthorized,
)
from app.api.routing import NO_STORE, body_router, refuses_valid_input
from app.config import Settings
from app.observability import audit
from app.resources import Resources, resources_of
from app.security import accounts, scopes

router = body_router("/api/v1/auth", ["auth"])

BAD_CREDENTIALS = "Incorrect email or password"
BAD_REFRESH_TOKEN = "Invalid refresh token"  # noqa: S105 - a message
TOO_MANY = "Too many attempts; try again later"
MAX_PASSWORD_LENGTH = 128
MAX_TOKEN_FIELD = 512


#: Any character but the C0/C1 control characters (a NUL or an escape in a password is an
#: encoding accident, not a choice); everything else in Unicode is fine (SPEC: unicode ok).
PASSWORD_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"  # noqa: S105 - a pattern


class RegisterIn(BaseModel):
    email: str = Field(
        max_length=accounts.MAX_EMAIL_LENGTH,
        examples=["user@example.com"],
        json_schema_extra={"format": "email"},
    )
    password: str = Field(
        min_length=8, max_length=MAX_PASSWORD_LENGTH, pattern=PASSWORD_PATTERN, repr=False
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return accounts.canonical_email(value)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str


class TokenPair(BaseModel):
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


class MfaRequired(BaseModel):
    """The login answer for an account with MFA on: no token yet; send `mfa_token` and a code
    to `/api/v1/auth/mfa/verify` within its lifetime (5 minutes)."""

    mfa_required: Literal[True] = True
    mfa_token: str = Field(repr=False)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_FIELD, repr=False)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=MAX_TOKEN_FIELD, repr=False)


def too_many(retry_after: int) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=TOO_MANY,
        headers={"Retry-After": str(retry_after)},
    )


def _tokens(response: Response, pair: Any, settings: Settings) -> TokenPair:
    response.headers.update(NO_STORE)
    set_refresh_cookie(response, pair.refresh_token, settings)
    return TokenPair(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={
        409: {"description": "an account with this email exists"},
        429: {"description": "too many registrations from this client"},
        503: {"description": "overloaded: retry after Retry-After seconds"},
    },
)
async def register(
    body: RegisterIn, session: SessionDep, security: SecurityDep, client: ClientAddress
) -> UserOut:
    # The per-IP limit comes first, so an abuser gets no argon2 work and no 409 oracle.
    await security.rate_limits.hit("register", security.identities.client(client))
    password_hash = await security.passwords.hash(body.password)
    try:
        user_id = await accounts.create(session, body.email, password_hash)
    except accounts.DuplicateEmail:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="An account with this email already exists"
        ) from None
    return UserOut(id=user_id, email=body.email)


class TokenForm:
    """The OAuth2 token endpoint's form (RFC 6749): `grant_type=password` (the default) with
    `username` and `password`, or `grant_type=refresh_token` with `refresh_token`."""

    def __init__(
        self,
        grant_type: Annotated[str | None, Form(pattern="^(password|refresh_token)$")] = None,
        username: Annotated[str | None, Form(max_length=1024)] = None,
        password: Annotated[str | None, Form(max_length=1024)] = None,
        refresh_token: Annotated[str | None, Form(max_length=MAX_TOKEN_FIELD)] = None,
        scope: Annotated[str, Form(max_length=1024)] = "",
        client_id: Annotated[str | None, Form(max_length=256)] = None,
        client_secret: Annotated[str | None, Form(max_length=256)] = None,
    ) -> None:
        self.grant_type = grant_type or "password"
        self.username = username
        self.password = password
        self.refresh_token = refresh_token

    def missing(self) -> list[str]:
        wanted = (
            ("refresh_token",) if self.grant_type == "refresh_token" else ("username", "password")
        )
        return [name for name in wanted if not getattr(self, name)]


def _missing(names: list[str]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", name), "msg": "Field required", "type": "missing"} for name in names]
    )


@router.post(
    "/login",
    response_model=TokenPair | MfaRequired,
    responses={
        401: {"description": "bad credentials (or an invalid refresh token)"},
        403: {"description": "REQUIRE_VERIFIED_EMAIL and the address is not verified"},
        429: {"description": "too many attempts from this client or on this account"},
        503: {"description": "overloaded: retry after Retry-After seconds"},
    },
)
async def login(
    form: Annotated[TokenForm, Depends()],
    resources: ResourcesDep,
    client: ClientAddress,
    response: Response,
) -> TokenPair | MfaRequired:
    missing = form.missing()
    if missing:
        raise _missing(missing)
    if form.grant_type == "refresh_token":
        return await _refresh(resources, client, str(form.refresh_token), response)
    return await _password_grant(
        resources, client, str(form.username), str(form.password), response
    )


async def _password_grant(
    resources: Resources, client: str | None, username: str, password: str, response: Response
) -> TokenPair | MfaRequired:
    security = resources.security
    client_key = security.identities.client(client)
    await security.rate_limits.hit("login", client_key)
    email = accounts.canonical_or_none(username)
    account = security.identities.account(email or accounts.folded(username))
    user = await accounts.credentials(resources.sessionmaker, email) if email else None
    matches, upgraded = await _counted_check(resources, account, client_key, password, user)
    if user is None or not matches or not user.is_active:
        audit.login_failed(account=account, reason="inactive" if matches else "invalid_credentials")
        raise unauthorized(BAD_CREDENTIALS)
    if upgraded is not None:
        await accounts.replace_hash(resources.sessionmaker, user.id, upgraded)
    if resources.settings.require_verified_email and not user.email_verified:
        # Only after the right password: this answer says nothing to someone guessing.
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Email address not verified")
    if user.mfa_enabled:
        # No token yet: the second factor completes the login (`/api/v1/auth/mfa/verify`).
        audit.mfa_challenged(user_id=user.id)
        response.headers.update(NO_STORE)
        return MfaRequired(mfa_token=security.mfa.issue_challenge(user.id))
    audit.login_succeeded(user_id=user.id)
    return await issue_tokens(resources, user.id, user.role, response)


async def _counted_check(
    resources: Resources,
    account: str,
    client_key: str,
    password: str,
    user: accounts.Credentials | None,
) -> tuple[bool, str | None]:
    """One password check, counted by the per-account limit BEFORE it runs (429 past the
    limit, no argon2 work). Without an account (`user` None) the same argon2 work is done on a
    dummy hash, so timing does not tell. Returns (matches, upgraded hash)."""
    security = resources.security
    attempt = await security.login_limit.begin(account, client_key)
    if not attempt.allowed:
        if not attempt.busy:
            audit.login_locked(account=account)
        raise too_many(attempt.retry_after)
    matches, upgraded = False, None
    try:
        if user is None or len(password) > MAX_PASSWORD_LENGTH:
            await security.passwords.verify_dummy(password[:MAX_PASSWORD_LENGTH])
        else:
            matches, upgraded = await security.passwords.verify(password, user.password_hash)
    finally:
        active = user is not None and user.is_active
        # With MFA on, a right password is half a login: it must not clear the failures (the
        # wrong codes) counted on this account before it.
        partial = user is not None and user.mfa_enabled
        await security.login_limit.finish(attempt, succeeded=matches and active, partial=partial)
    return matches, upgraded


async def issue_tokens(
    resources: Resources, user_id: uuid.UUID, role: str, response: Response
) -> TokenPair:
    """A new session for `user_id` (scopes from its role) as the token response."""
    issued = await resources.security.tokens.login(
        str(user_id), scopes.claim(scopes.for_role(role))
    )
    return _tokens(response, issued, resources.settings)


#: The answers of a route that re-checks the signed-in user's password (`check_password`).
PASSWORD_RECHECKED: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token, or wrong password"},
    403: {"description": "an API key instead of an access token"},
    429: {"description": "too many failed attempts"},
}


async def check_password(
    resources: Resources, user_id: uuid.UUID, password: str, client: str | None
) -> None:
    """Re-check the signed-in user's password (password change, account deletion, MFA off): a
    wrong one is a failed login, counted by the same per-account limit (401, then 429)."""
    security = resources.security
    user = await accounts.credentials_by_id(resources.sessionmaker, user_id)
    if user is None:
        raise unauthorized()
    account = security.identities.account(user.email)
    client_key = security.identities.client(client)
    matches, _ = await _counted_check(resources, account, client_key, password, user)
    if not matches:
        audit.login_failed(account=account)
        raise unauthorized(BAD_CREDENTIALS)


async def _refresh_body(request: Request) -> RefreshIn:
    """`{"refresh_token"}` as JSON, or the RFC 6749 form `grant_type=refresh_token&...`, or
    (`REFRESH_TOKEN_COOKIE`) no body and the cookie."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        token = cookie_token(request, resources_of(request).settings)
        if token is not None:
            return RefreshIn(refresh_token=token)
    try:
        if content_type == "application/x-www-form-urlencoded":
            form = await request.form()
            if form.get("grant_type") not in (None, "refresh_token"):
                raise RequestValidationError(
                    [{"loc": ("body", "grant_type"), "msg": "must be refresh_token",
                      "type": "value_error"}]
                )  # fmt: skip
            return RefreshIn.model_validate({"refresh_token": form.get("refresh_token")})
        return RefreshIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


_REFRESH_BODY = {
    # Documented as required; with REFRESH_TOKEN_COOKIE a browser may send the cookie instead.
    "required": True,
    "content": {
        "application/json": {"schema": RefreshIn.model_json_schema()},
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["refresh_token"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["refresh_token"]},
                    "refresh_token": {"type": "string", "minLength": 1,
                                      "maxLength": MAX_TOKEN_FIELD},
                },
            }
        },
    },
}  # fmt: skip


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses={
        401: {"description": "invalid, expired, revoked or reused token"},
        403: {"description": "the refresh cookie came from an origin not in CORS_ORIGINS"},
        422: {"description": "the body is not a refresh request"},
        429: {"description": "too many refreshes from this client"},
    },
    # The body is optional only because the refresh cookie may replace it: with neither, 422.
    openapi_extra={"requestBody": _REFRESH_BODY, **refuses_valid_input(422)},
)
async def refresh(
    body: Annotated[RefreshIn, Depends(_refresh_body)],
    resources: ResourcesDep,
    client: ClientAddress,
    response: Response,
) -> TokenPair:
    return await _refresh(resources, client, body.refresh_token, response)


async def _refresh(
    resources: Resources, client: str | None, refresh_token: str, response: Response
) -> TokenPair:
    security = resources.security
    await security.rate_limits.hit("refresh", security.identities.client(client))
    rotation = await security.tokens.rotate(refresh_token)
    if rotation.outcome == "reused":
        audit.refresh_reuse_detected(family_id=rotation.family, user_id=rotation.user_id)
    if rotation.outcome != "ok" or rotation.user_id is None:
        raise unauthorized(BAD_REFRESH_TOKEN)
    user = await resources.users.read(rotation.user_id)  # the row itself, not the cache
    if user is None or not user.is_active:
        if rotation.family is not None:
            await security.tokens.revoke_session(rotation.family)
        raise unauthorized(BAD_REFRESH_TOKEN)
    scope = scopes.claim(scopes.for_role(user.role))  # the role NOW, not at login
    return _tokens(response, security.tokens.continued(rotation, scope), resources.settings)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        401: {"description": "missing, invalid or revoked access token"},
        403: {
            "description": "an API key instead of an access token, or the refresh cookie came "
            "from an origin not in CORS_ORIGINS"
        },
    },
)
async def logout(
    claims: SessionClaims,
    request: Request,
    resources: ResourcesDep,
    body: Annotated[LogoutIn | None, Body()] = None,
) -> Response:
    settings = resources.settings
    refresh_token = body.refresh_token if body is not None else None
    await resources.security.tokens.logout(claims, refresh_token or cookie_token(request, settings))
    audit.logout(user_id=claims.sub, family_id=claims.sid)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, settings)
    return response
