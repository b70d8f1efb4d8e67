"""`/api/v1/auth/mfa/*`: TOTP second factor (SPEC section 3, "Multi-factor authentication").

setup -> enable with a code (returns 10 recovery codes, shown once) -> logins answer
`{"mfa_required": true, "mfa_token"}` after the right password -> verify with the token and a TOTP
or recovery code returns the token pair. The rules (sealed seeds, codes accepted once on any
replica, single-use recovery codes and mfa tokens) live in `app.security.mfa`; what this module
adds is the HTTP side:
- a wrong code at verify is a failed login: counted by the same per-account limit as a wrong
  password (401, then 429), and the per-IP login limit applies first;
- every failure of verify is the same 401 (bad, expired or used token; wrong or replayed code),
  so an answer never says which part was wrong;
- answers holding a seed, recovery codes or tokens carry `Cache-Control: no-store`;
- turning MFA off needs the password (a wrong one counts as a failed login);
- setup, enable and disable need a session (an access token): an API key is a 403, so a leaked
  key cannot turn MFA on and lock its owner out.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ClientAddress, ResourcesDep, SessionUser, unauthorized
from app.api.routes.auth import (
    PASSWORD_RECHECKED,
    TokenPair,
    check_password,
    issue_tokens,
    too_many,
)
from app.api.routing import NO_STORE, body_router, refuses_valid_input
from app.keys.signing import MAX_TOKEN_LENGTH, TokenRejected
from app.observability import audit
from app.security import accounts
from app.security.mfa import AlreadyEnabled, NotPending, WrongCode

router = body_router("/api/v1/auth/mfa", ["mfa"])

BAD_MFA = "Invalid or expired MFA token or code"
WRONG_CODE = "Invalid code"
ALREADY_ENABLED = "MFA is already enabled"
#: Longest code accepted: a recovery code with separators, with room for spaces.
MAX_CODE_LENGTH = 64


class MfaSetupOut(BaseModel):
    secret: str = Field(repr=False, description="base32 TOTP seed (RFC 6238, SHA-1, 6, 30 s)")
    otpauth_uri: str = Field(repr=False, description="the same, for an authenticator's QR code")


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=MAX_CODE_LENGTH, repr=False)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(
        repr=False, description="10 single-use codes, each accepted by verify instead of a TOTP"
    )


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, repr=False)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH, repr=False)
    code: str = Field(min_length=1, max_length=MAX_CODE_LENGTH, repr=False)


SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked access token"},
    403: {"description": "an API key instead of an access token"},
}


@router.post(
    "/setup",
    response_model=MfaSetupOut,
    responses={**SIGNED_IN, 409: {"description": ALREADY_ENABLED}},
)
async def mfa_setup(user: SessionUser, resources: ResourcesDep, response: Response) -> MfaSetupOut:
    """A new TOTP seed, pending until `enable` confirms it (calling setup again replaces it)."""
    try:
        setup = await resources.security.mfa.setup(resources.sessionmaker, user.id, user.email)
    except AlreadyEnabled:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=ALREADY_ENABLED) from None
    response.headers.update(NO_STORE)
    return MfaSetupOut(secret=setup.secret, otpauth_uri=setup.otpauth_uri)


@router.post(
    "/enable",
    response_model=RecoveryCodesOut,
    responses={
        **SIGNED_IN,
        400: {"description": "wrong code, or no pending setup to confirm"},
        409: {"description": ALREADY_ENABLED},
    },
    openapi_extra=refuses_valid_input(400),
)
async def mfa_enable(
    body: CodeIn, user: SessionUser, resources: ResourcesDep, response: Response
) -> RecoveryCodesOut:
    try:
        codes = await resources.security.mfa.enable(resources.sessionmaker, user.id, body.code)
    except AlreadyEnabled:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=ALREADY_ENABLED) from None
    except NotPending:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="No MFA setup to confirm") from None
    except WrongCode:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=WRONG_CODE) from None
    resources.users.forget(user.id)
    audit.mfa_enabled(user_id=user.id)
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=PASSWORD_RECHECKED,
)
async def mfa_disable(
    body: DisableIn, user: SessionUser, resources: ResourcesDep, client: ClientAddress
) -> Response:
    await check_password(resources, user.id, body.password, client)
    if await resources.security.mfa.disable(resources.sessionmaker, user.id):
        resources.users.forget(user.id)
        audit.mfa_disabled(user_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/verify",
    response_model=TokenPair,
    responses={
        401: {"description": "invalid, expired or used mfa_token, or a wrong or replayed code"},
        429: {"description": "too many attempts from this client or on this account"},
        503: {"description": "overloaded: retry after Retry-After seconds"},
    },
)
async def mfa_verify(
    body: VerifyIn, resources: ResourcesDep, client: ClientAddress, response: Response
) -> TokenPair:
    """Complete a login that answered `mfa_required` with a TOTP code or a recovery code."""
    security = resources.security
    identities = security.identities
    client_key = identities.client(client)
    await security.rate_limits.hit("login", client_key)
    try:
        challenge = await security.mfa.open_challenge(body.mfa_token)
        user_id = uuid.UUID(challenge.user_id)
    except (TokenRejected, ValueError):
        raise unauthorized(BAD_MFA) from None
    user = await accounts.credentials_by_id(resources.sessionmaker, user_id)
    if user is None or not user.is_active or not user.mfa_enabled:
        raise unauthorized(BAD_MFA)
    account = identities.account(user.email)
    attempt = await security.login_limit.begin(account, client_key)
    if not attempt.allowed:
        if not attempt.busy:
            audit.login_locked(account=account)
        raise too_many(attempt.retry_after)
    kind = None
    try:
        kind = await security.mfa.check_code(resources.sessionmaker, user.id, body.code)
    finally:
        await security.login_limit.finish(attempt, succeeded=kind is not None)
    if kind is None:
        audit.login_failed(account=account, reason="invalid_mfa_code")
        raise unauthorized(BAD_MFA)
    if not await security.mfa.use_challenge(challenge):
        raise unauthorized(BAD_MFA)  # a concurrent verify with the same token came first
    if kind == "recovery":
        audit.mfa_recovery_code_used(user_id=user.id)
    audit.login_succeeded(user_id=user.id)
    return await issue_tokens(resources, user.id, user.role, response)
