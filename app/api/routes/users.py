"""`/api/v1/users`: the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import CurrentUser
from app.api.routes.auth import UserOut
from app.api.routing import NO_STORE

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get(
    "/me",
    response_model=UserOut,
    responses={
        401: {
            "description": "missing, invalid or revoked token, or the user is disabled or deleted"
        }
    },
)
async def me(user: CurrentUser, response: Response) -> UserOut:
    response.headers.update(NO_STORE)  # personal data: no cache may keep it
    return UserOut(id=user.id, email=user.email)
