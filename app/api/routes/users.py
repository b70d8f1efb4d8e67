"""`/api/v1/users`: the signed-in user: who it is, and deleting its own account."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import Response, status
from pydantic import BaseModel, Field

from app.api.deps import ClientAddress, CurrentUser, ResourcesDep, SessionUser
from app.api.routes.auth import PASSWORD_RECHECKED, check_password
from app.api.routing import NO_STORE, body_router
from app.observability import audit
from app.security import accounts

router = body_router("/api/v1/users", ["users"])


class MeOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Literal["user", "admin"]
    email_verified: bool
    mfa_enabled: bool


class DeleteMeIn(BaseModel):
    password: str = Field(min_length=1, max_length=1024, repr=False)


@router.get(
    "/me",
    response_model=MeOut,
    responses={
        401: {
            "description": "missing, invalid or revoked token, or the user is disabled or deleted"
        }
    },
)
async def me(user: CurrentUser) -> Response:
    body = MeOut(
        id=user.id,
        email=user.email,
        role="admin" if user.role == "admin" else "user",
        email_verified=user.email_verified,
        mfa_enabled=user.mfa_enabled,
    )
    # The hottest authenticated read answers with its serialized model itself: through
    # `response_model` FastAPI would validate the model a second time and merge a `Response`
    # parameter's headers (measured in bench/results.md, "Second pass"). The schema is still
    # `MeOut`. Personal data: no cache may keep it.
    return Response(body.model_dump_json(), media_type="application/json", headers=NO_STORE)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=PASSWORD_RECHECKED,
)
async def delete_me(
    body: DeleteMeIn, user: SessionUser, resources: ResourcesDep, client: ClientAddress
) -> Response:
    await check_password(resources, user.id, body.password, client)
    await accounts.delete(resources.sessionmaker, user.id)  # what it owns goes with it
    resources.users.forget(user.id)
    await resources.security.tokens.revoke_user(str(user.id))
    audit.account_deleted(user_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
