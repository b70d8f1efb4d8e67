"""`/api/v1/items`: the example resource. Copy this module (and `tests/api/test_items.py`) to
add your own; docs/extending.md walks through it.

What to keep when you copy it:
- Every statement filters by the caller (`Item.owner_id == user.id`) IN the SQL, so another
  user's item is a 404 exactly like one that does not exist: ids reveal nothing, and there is no
  fetch-then-check step to forget.
- Writes are single statements with RETURNING: one round trip, no read-modify-write race.
- Bodies are pydantic models with bounds and `extra="forbid"` (a typo in a PATCH is a 422, not a
  silent no-op); responses are explicit `*Out` models, never the ORM row.
- Lists are keyset-paginated with an opaque cursor (`app/api/pagination.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import ColumnElement, delete, insert, select, tuple_, update

from app.api.deps import CurrentUser, SessionDep
from app.api.pagination import Page, PageDep
from app.api.routing import body_router
from app.models import Item

router = body_router("/api/v1/items", ["items"])

NOT_FOUND = "Item not found"
SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked token"}
}
ONE_ITEM = {**SIGNED_IN, 404: {"description": "no such item among the caller's (nor another's)"}}


#: PostgreSQL text cannot hold NUL; saying so in the schema keeps the OpenAPI document exact.
NO_NUL = r"^[^\x00]*$"


def encodable(value: str) -> str:
    """JSON may carry a lone surrogate (`"\\ud800"`), which no database can store: 422, not 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NO_NUL),
    AfterValidator(encodable),
]
Description = Annotated[
    str, StringConstraints(max_length=2000, pattern=NO_NUL), AfterValidator(encodable)
]


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None


class ItemPatch(BaseModel):
    """Only the fields sent change: `description: null` clears it; `title` may be left out but
    not null."""

    model_config = ConfigDict(extra="forbid")

    # Optional yet not nullable: `null` fails as "not a string", and the schema says so. Unsent
    # fields read as None, so use `model_dump(exclude_unset=True)`, not the attributes.
    title: Annotated[Title, Field(default=None)]
    description: Description | None = None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    created_at: datetime
    updated_at: datetime


def _mine(item_id: uuid.UUID, owner_id: uuid.UUID) -> ColumnElement[bool]:
    """The one condition every statement on a single item carries."""
    return (Item.id == item_id) & (Item.owner_id == owner_id)


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ItemOut, responses=SIGNED_IN)
async def create_item(body: ItemIn, user: CurrentUser, session: SessionDep) -> ItemOut:
    statement = insert(Item).values(owner_id=user.id, **body.model_dump()).returning(Item)
    item = ItemOut.model_validate(await session.scalar(statement))
    await session.commit()
    return item


@router.get("", response_model=Page[ItemOut], responses=SIGNED_IN)
async def list_items(user: CurrentUser, session: SessionDep, page: PageDep) -> Page[ItemOut]:
    """The caller's items, newest first."""
    statement = (
        select(Item)
        .where(Item.owner_id == user.id)
        .order_by(Item.created_at.desc(), Item.id.desc())
        .limit(page.limit + 1)
    )
    if page.after is not None:
        statement = statement.where(tuple_(Item.created_at, Item.id) < tuple(page.after))
    rows = (await session.scalars(statement)).all()
    return page.of(rows, ItemOut.model_validate, key=lambda item: (item.created_at, item.id))


@router.get("/{item_id}", response_model=ItemOut, responses=ONE_ITEM)
async def get_item(item_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> ItemOut:
    item = await session.scalar(select(Item).where(_mine(item_id, user.id)))
    if item is None:
        raise _not_found()
    return ItemOut.model_validate(item)


@router.patch("/{item_id}", response_model=ItemOut, responses=ONE_ITEM)
async def update_item(
    item_id: uuid.UUID, body: ItemPatch, user: CurrentUser, session: SessionDep
) -> ItemOut:
    changes = body.model_dump(exclude_unset=True)
    if not changes:  # nothing to change: answer like a GET (and still 404 for others' items)
        return await get_item(item_id, user, session)
    statement = update(Item).where(_mine(item_id, user.id)).values(**changes).returning(Item)
    item = await session.scalar(statement)
    if item is None:
        raise _not_found()
    out = ItemOut.model_validate(item)
    await session.commit()
    return out


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ONE_ITEM)
async def delete_item(item_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> None:
    deleted = await session.scalar(delete(Item).where(_mine(item_id, user.id)).returning(Item.id))
    if deleted is None:
        raise _not_found()
    await session.commit()
