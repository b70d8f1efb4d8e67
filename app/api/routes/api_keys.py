"""`/api/v1/api-keys`: API keys for machine clients (SPEC section 3), shaped like the items
resource (ownership in every statement, single-statement writes, keyset-paginated list).

- The key (`fst_...`, `app.security.api_keys`) is in the 201 answer and nowhere else: the table
  keeps its SHA-256 and the public `lookup_id` (shown as `prefix`), never the key.
- Scopes are at most the caller's own (`user.scopes`: the token's scopes that its role grants);
  more is a 422 naming the field. On every use they are cut down again to the owner's role.
- DELETE takes effect at once on every replica (`ApiKeyService.revoke` publishes `key:<id>` on
  the revocation list), not when caches expire.
- Every route here needs a session (an access token): an API key cannot list, mint or delete
  keys (403), so a leaked key cannot give itself a longer life.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, insert, select, tuple_

from app.api.deps import ResourcesDep, SessionDep, SessionUser
from app.api.pagination import Page, PageDep
from app.api.routes.items import NO_NUL, encodable
from app.api.routing import NO_STORE, body_router, refuses_valid_input
from app.models import ApiKey
from app.observability import audit
from app.security import api_keys
from app.security.api_key_service import expiry
from app.security.scopes import Scope

router = body_router("/api/v1/api-keys", ["api-keys"])

NOT_FOUND = "API key not found"
MAX_LIFETIME_DAYS = 3650
SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked access token"},
    403: {"description": "an API key instead of an access token"},
}

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL), AfterValidator(encodable)
]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scopes: list[Scope] = Field(default_factory=list, max_length=16)
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_LIFETIME_DAYS, strict=True)


class ApiKeyOut(BaseModel):
    """A key as listings show it: never the key itself."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str
    key: str = Field(repr=False, description="the key itself: shown this once, never again")
    prefix: str
    scopes: list[str]
    expires_at: datetime | None


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=api_keys.public_prefix(row.lookup_id),
        scopes=sorted(row.scopes),
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        created_at=row.created_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={**SIGNED_IN, 422: {"description": "invalid, or scopes beyond the caller's"}},
    openapi_extra=refuses_valid_input(422),
)
async def create_api_key(
    body: ApiKeyIn, user: SessionUser, session: SessionDep, response: Response
) -> ApiKeyCreated:
    wanted: list[str] = sorted(set(body.scopes))
    if not set(wanted) <= user.scopes:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "scopes"),
                    "msg": "a key cannot hold scopes its creator does not have",
                    "type": "value_error",
                }
            ]
        )
    generated = api_keys.generate()
    row = await session.scalar(
        insert(ApiKey)
        .values(
            id=uuid.uuid4(),
            owner_id=user.id,
            name=body.name,
            lookup_id=generated.lookup_id,
            key_hash=generated.hash,
            scopes=wanted,
            expires_at=expiry(body.expires_in_days),
        )
        .returning(ApiKey)
    )
    assert row is not None
    created = ApiKeyCreated(
        id=row.id,
        name=row.name,
        key=generated.key,
        prefix=api_keys.public_prefix(row.lookup_id),
        scopes=wanted,
        expires_at=row.expires_at,
    )
    await session.commit()
    audit.api_key_created(user_id=user.id, key_id=row.id, scopes=wanted)
    response.headers.update(NO_STORE)
    return created


@router.get("", response_model=Page[ApiKeyOut], responses=SIGNED_IN)
async def list_api_keys(user: SessionUser, session: SessionDep, page: PageDep) -> Page[ApiKeyOut]:
    """The caller's keys, newest first, without the keys themselves."""
    statement = (
        select(ApiKey)
        .where(ApiKey.owner_id == user.id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        .limit(page.limit + 1)
    )
    if page.after is not None:
        statement = statement.where(tuple_(ApiKey.created_at, ApiKey.id) < tuple(page.after))
    rows = (await session.scalars(statement)).all()
    return page.of(rows, _out, key=lambda row: (row.created_at, row.id))


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**SIGNED_IN, 404: {"description": "no such key among the caller's"}},
)
async def delete_api_key(
    key_id: uuid.UUID, user: SessionUser, session: SessionDep, resources: ResourcesDep
) -> None:
    deleted = await session.scalar(
        delete(ApiKey).where(ApiKey.id == key_id, ApiKey.owner_id == user.id).returning(ApiKey.id)
    )
    if deleted is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    await session.commit()
    await resources.security.api_keys.revoke(key_id)  # refused at once on every replica
    audit.api_key_deleted(user_id=user.id, key_id=key_id)
