"""Keyset pagination with an opaque cursor, for every list endpoint.

    @router.get("", response_model=Page[ItemOut])
    async def list_items(page: PageDep, ...) -> Page[ItemOut]:
        rows = ... WHERE (created_at, id) < page.after ... ORDER BY created_at DESC, id DESC
                   LIMIT page.limit + 1
        return page.of(rows, ItemOut.model_validate, key=lambda row: (row.created_at, row.id))

A page is `{"items": [...], "next_cursor": "..." | null}`; `?limit=` is 1..100 (default 20) and
`?cursor=` is the previous page's `next_cursor`. Keyset (seek) pagination, unlike OFFSET, costs
the same at any depth and never repeats or skips a row when rows are added meanwhile.

The cursor is the sort key of the last row served, `(created_at, id)`, packed as 8 bytes of
microseconds since the epoch and the 16 bytes of the UUID, base64url-encoded: always 32
characters. It is opaque to clients (they pass it back unchanged, so its format may change) but
neither secret nor signed: every query also filters by the caller, so a forged cursor can only
move around in the caller's own rows. Every string of that shape is a position (an out-of-range
time is clamped, which orders the same), so the OpenAPI pattern says exactly which cursors are
accepted; anything else is a 422 naming the `cursor` parameter without its value, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Generic, NamedTuple, TypeVar

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{32}$"

T = TypeVar("T")
Row = TypeVar("Row")

_PACKED = struct.Struct(">q16s")  # signed 64-bit microseconds, then the UUID's bytes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_LATEST = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


class Cursor(NamedTuple):
    """Where the next page starts: after the row with this `(created_at, id)`."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        micros = (self.created_at - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(_PACKED.pack(micros, self.id.bytes)).decode()

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """The position in a cursor; `ValueError` (never quoting it) when it is not one."""
        try:
            raw = base64.b64decode(value, altchars=b"-_", validate=True)
            micros, id_bytes = _PACKED.unpack(raw)
        except (binascii.Error, struct.error, ValueError):
            raise ValueError("is not a cursor this API returned") from None
        micros = min(max(micros, _EARLIEST), _LATEST)
        return cls(_EPOCH + timedelta(microseconds=micros), uuid.UUID(bytes=id_bytes))


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: Cursor | None

    def of(
        self,
        rows: Sequence[Row],
        out: Callable[[Row], T],
        key: Callable[[Row], tuple[datetime, uuid.UUID]],
    ) -> Page[T]:
        """The page for `rows` fetched with `LIMIT limit + 1` (the extra row says "more")."""
        served = rows[: self.limit]
        more = len(rows) > self.limit
        return Page(
            items=[out(row) for row in served],
            next_cursor=Cursor(*key(served[-1])).encode() if more else None,
        )


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page (opaque)"),
    ] = None,
) -> PageRequest:
    try:
        after = Cursor.decode(cursor) if cursor is not None else None
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error"}]
        ) from None
    return PageRequest(limit, after)


#: `?limit=&cursor=` of a list endpoint, validated and decoded.
PageDep = Annotated[PageRequest, Depends(page_request)]
