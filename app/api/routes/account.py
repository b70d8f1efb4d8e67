"""`/api/v1/auth/password/*` and `/api/v1/auth/verify*`: password change and reset by mail,
email verification (SPEC section 3, "Accounts, roles and browser clients").

- Changing the password needs the current one; a wrong one counts as a failed login (the same
  per-account limit). Changing or resetting it ends every earlier session on every replica.
- `forgot` answers 202 with the same body, at once, whatever the address: the lookup, the token
  and the mail happen after the response is sent, so neither the answer nor its timing says
  whether an account exists, and a slow or failing mail server cannot either.
- Mailed tokens are single-use, short-lived and stored only as hashes
  (`app/security/account_tokens.py`); they appear nowhere but in the mail.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, HTTPException, Response, status
from pydantic import BaseModel, Field

from app.api.deps import ClientAddress, CurrentUser, ResourcesDep, SessionUser
from app.api.routes.auth import (
    MAX_PASSWORD_LENGTH,
    PASSWORD_PATTERN,
    TokenPair,
    check_password,
    issue_tokens,
)
from app.api.routing import body_router, refuses_valid_input
from app.mail.messages import email_verify_mail, password_reset_mail
from app.observability import audit
from app.resources import Resources
from app.security import account_tokens, accounts

router = body_router("/api/v1/auth", ["account"])

BAD_TOKEN = "Invalid or expired token"  # noqa: S105 - a message
NewPassword = Annotated[
    str,
    Field(min_length=8, max_length=MAX_PASSWORD_LENGTH, pattern=PASSWORD_PATTERN, repr=False),
]
MailedToken = Annotated[
    str, Field(min_length=1, max_length=account_tokens.MAX_TOKEN_LENGTH, repr=False)
]


class PasswordChangeIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024, repr=False)
    new_password: NewPassword


class ForgotIn(BaseModel):
    email: str = Field(min_length=1, max_length=accounts.MAX_EMAIL_LENGTH)


class ResetIn(BaseModel):
    token: MailedToken
    new_password: NewPassword


class VerifyIn(BaseModel):
    token: MailedToken


class Accepted(BaseModel):
    detail: str


@router.post(
    "/password/change",
    response_model=TokenPair,
    responses={
        401: {"description": "missing or invalid token, or wrong current password"},
        403: {"description": "an API key instead of an access token"},
        429: {"description": "too many failed attempts"},
    },
)
async def change_password(
    body: PasswordChangeIn,
    user: SessionUser,
    resources: ResourcesDep,
    client: ClientAddress,
    response: Response,
) -> TokenPair:
    security = resources.security
    await check_password(resources, user.id, body.current_password, client)
    new_hash = await security.passwords.hash(body.new_password)
    await accounts.replace_hash(resources.sessionmaker, user.id, new_hash)
    await security.tokens.revoke_user(str(user.id))  # every earlier session, every replica
    audit.password_changed(user_id=user.id)
    return await issue_tokens(resources, user.id, user.role, response)


FORGOT_ANSWER = "If an account uses this address, a reset link is on its way"


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={429: {"description": "too many reset requests from this client"}},
)
async def forgot_password(
    body: ForgotIn, resources: ResourcesDep, client: ClientAddress, later: BackgroundTasks
) -> Accepted:
    security = resources.security
    await security.rate_limits.hit("password_reset", security.identities.client(client))
    email = accounts.canonical_or_none(body.email)
    if email is not None:
        later.add_task(_mail_reset_link, resources, email)
    return Accepted(detail=FORGOT_ANSWER)


async def _mail_reset_link(resources: Resources, email: str) -> None:
    """After the response: find the account, make a token, queue the mail (or nothing)."""
    user_id = await accounts.active_id_by_email(resources.sessionmaker, email)
    if user_id is None:
        return
    settings = resources.settings
    token = await account_tokens.issue(
        resources.sessionmaker, user_id, "password_reset", settings.password_reset_ttl_seconds
    )
    resources.mailer.enqueue(password_reset_mail(settings, email, token))
    audit.password_reset_requested(user_id=user_id)


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={400: {"description": "unknown, expired or already used token"}},
    openapi_extra=refuses_valid_input(400),
)
async def reset_password(body: ResetIn, resources: ResourcesDep) -> Response:
    security = resources.security
    # Hash first: if hashing is shed (503), the token is still unused and can be retried.
    new_hash = await security.passwords.hash(body.new_password)
    async with resources.sessionmaker() as session:
        user_id = await account_tokens.consume(session, body.token, "password_reset")
        if user_id is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=BAD_TOKEN)
        # Following the mailed link proves the address, so it is verified too.
        await accounts.set_password(session, user_id, new_hash, verified=True)
        await session.commit()
    resources.users.forget(user_id)
    await security.tokens.revoke_user(str(user_id))
    audit.password_reset(user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/verify/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={
        401: {"description": "missing or invalid token"},
        429: {"description": "too many mails requested from this client"},
    },
)
async def request_verification(
    user: CurrentUser, resources: ResourcesDep, client: ClientAddress
) -> Accepted:
    security, settings = resources.security, resources.settings
    await security.rate_limits.hit("password_reset", security.identities.client(client))
    if not user.email_verified:
        token = await account_tokens.issue(
            resources.sessionmaker, user.id, "email_verify", settings.email_verify_ttl_seconds
        )
        resources.mailer.enqueue(email_verify_mail(settings, user.email, token))
    return Accepted(detail="A verification link is on its way")


@router.post(
    "/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={400: {"description": "unknown, expired or already used token"}},
    openapi_extra=refuses_valid_input(400),
)
async def verify_email(body: VerifyIn, resources: ResourcesDep) -> Response:
    async with resources.sessionmaker() as session:
        user_id = await account_tokens.consume(session, body.token, "email_verify")
        if user_id is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=BAD_TOKEN)
        await accounts.mark_verified(session, user_id)
        await session.commit()
    resources.users.forget(user_id)
    audit.email_verified(user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
