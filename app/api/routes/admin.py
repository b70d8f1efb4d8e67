"""`/api/v1/admin/users`: list accounts and change them, for callers with the `admin` scope.

`AdminUser` (`RequireScopes("admin")`) is the pattern for any route that needs a scope: the
access token must carry it AND the caller's live role must still grant it. Disabling an account
or changing its role ends all of its sessions at once, on every replica: its refresh families are
revoked and their access tokens refused (a token's `scope` claim must not outlive the role).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, tuple_, update

from app.api.auth import AdminUser
from app.api.deps import ResourcesDep, SessionDep
from app.api.pagination import Page, PageDep
from app.api.routing import body_router
from app.models import Role, User
from app.observability import audit

router = body_router("/api/v1/admin", ["admin"])

ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked token"},
    403: {"description": "the token lacks the admin scope"},
}


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    email_verified: bool
    created_at: datetime


class AdminUserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = None
    role: Role | None = None


_COLUMNS = (User.id, User.email, User.role, User.is_active, User.email_verified, User.created_at)


@router.get("/users", response_model=Page[AdminUserOut], responses=ADMIN_ONLY)
async def list_users(admin: AdminUser, session: SessionDep, page: PageDep) -> Page[AdminUserOut]:
    query = select(*_COLUMNS).order_by(User.created_at.desc(), User.id.desc())
    if page.after is not None:
        query = query.where(tuple_(User.created_at, User.id) < tuple(page.after))
    rows = (await session.execute(query.limit(page.limit + 1))).all()
    return page.of(rows, AdminUserOut.model_validate, key=lambda row: (row.created_at, row.id))


@router.patch(
    "/users/{user_id}",
    response_model=AdminUserOut,
    responses={**ADMIN_ONLY, 404: {"description": "no such user"}},
)
async def update_user(
    user_id: uuid.UUID,
    body: AdminUserPatch,
    admin: AdminUser,
    session: SessionDep,
    resources: ResourcesDep,
) -> AdminUserOut:
    changes = body.model_dump(exclude_none=True)
    before = (
        await session.execute(select(User.is_active, User.role).where(User.id == user_id))
    ).first()
    if before is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
    if changes:
        changed = update(User).where(User.id == user_id).values(**changes).returning(*_COLUMNS)
        row = (await session.execute(changed)).one()
    else:
        row = (await session.execute(select(*_COLUMNS).where(User.id == user_id))).one()
    await session.commit()
    resources.users.forget(user_id)
    if (before.is_active and not row.is_active) or row.role != before.role:
        await resources.security.tokens.revoke_user(str(user_id))
    audit.user_updated(user_id=user_id, by=admin.id, changes=sorted(changes))
    return AdminUserOut.model_validate(row)
