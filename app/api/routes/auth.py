"""`/api/v1/auth`: register, login (OAuth2 password form), refresh, logout (SPEC section 3).

Failures never say which part was wrong: unknown account and wrong password get the same 401
body after the same amount of argon2 work, and bodies never echo what the client sent.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Depends, HTTPException, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field, field_validator

from app.api.deps import CurrentClaims, ResourcesDep, SecurityDep, SessionDep, unauthorized
from app.api.routing import NO_STORE, body_router
from app.observability import audit
from app.security import accounts

router = body_router("/api/v1/auth", ["auth"])

BAD_CREDENTIALS = "Incorrect email or password"
BAD_REFRESH_TOKEN = "Invalid refresh token"  # noqa: S105 - a message
MAX_PASSWORD_LENGTH = 128
MAX_TOKEN_FIELD = 512


class RegisterIn(BaseModel):
    email: str = Field(
        max_length=accounts.MAX_EMAIL_LENGTH,
        examples=["user@example.com"],
        json_schema_extra={"format": "email"},
    )
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_LENGTH, repr=False)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return accounts.checked_email(value)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str


class TokenPair(BaseModel):
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_FIELD, repr=False)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=MAX_TOKEN_FIELD, repr=False)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"description": "an account with this email exists"}},
)
async def register(body: RegisterIn, session: SessionDep, security: SecurityDep) -> UserOut:
    password_hash = await security.passwords.hash(body.password)
    try:
        user = await accounts.create(session, body.email, password_hash)
    except accounts.DuplicateEmail:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="An account with this email already exists"
        ) from None
    return UserOut(id=user.id, email=user.email)


@router.post(
    "/login",
    response_model=TokenPair,
    responses={
        401: {"description": "bad credentials"},
        429: {"description": "too many failed attempts for this account"},
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    security: SecurityDep,
    response: Response,
) -> TokenPair:
    account = accounts.normalize_email(form.username)
    retry_after = await security.login_limit.retry_after(account)
    if retry_after is not None:
        audit.login_locked(email=account)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many failed login attempts; try again later",
            headers={"Retry-After": str(retry_after)},
        )
    user = await accounts.by_email(session, account) if account else None
    if user is None or len(form.password) > MAX_PASSWORD_LENGTH:
        await security.passwords.verify_dummy(form.password[:MAX_PASSWORD_LENGTH])
        await security.login_limit.record_failure(account)
        audit.login_failed(email=account, reason="unknown_account")
        raise unauthorized(BAD_CREDENTIALS)
    matches, upgraded = await security.passwords.verify(form.password, user.password_hash)
    if not matches or not user.is_active:
        await security.login_limit.record_failure(account)
        audit.login_failed(
            email=account, user_id=user.id, reason="wrong_password" if not matches else "inactive"
        )
        raise unauthorized(BAD_CREDENTIALS)
    if upgraded is not None:
        await accounts.replace_hash(session, user.id, upgraded)
    await security.login_limit.reset(account)
    issued = await security.tokens.login(str(user.id))
    audit.login_succeeded(user_id=user.id)
    response.headers.update(NO_STORE)
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses={401: {"description": "invalid, expired, revoked or reused token"}},
)
async def refresh(body: RefreshIn, resources: ResourcesDep, response: Response) -> TokenPair:
    security = resources.security
    rotation, issued = await security.tokens.refresh(body.refresh_token)
    if rotation.outcome == "reused":
        audit.refresh_reuse_detected(family_id=rotation.family, user_id=rotation.user_id)
    if issued is None or rotation.user_id is None:
        raise unauthorized(BAD_REFRESH_TOKEN)
    user = await resources.users.read(rotation.user_id)  # the row itself, not the cache
    if user is None or not user.is_active:
        if rotation.family is not None:
            await security.tokens.revoke_session(rotation.family)
        raise unauthorized(BAD_REFRESH_TOKEN)
    response.headers.update(NO_STORE)
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={401: {"description": "missing, invalid or revoked access token"}},
)
async def logout(
    claims: CurrentClaims, security: SecurityDep, body: Annotated[LogoutIn | None, Body()] = None
) -> Response:
    await security.tokens.logout(claims, body.refresh_token if body is not None else None)
    audit.logout(user_id=claims.sub, family_id=claims.sid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
