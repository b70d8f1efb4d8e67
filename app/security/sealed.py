"""The values sealed with `DATA_KEYS` in the database: where they are, how many per key, and
re-encrypting them under the current key (`python -m app data reencrypt`).

Why it looks like this:
- The sealed columns are FOUND, not listed: every column of `app.models` whose type is
  `EncryptedText`. A column added later is re-encrypted and counted without touching this file.
  Its table must have a one-column primary key: that id is the row part of the value's
  associated data (`field_context(table, column, id)`).
- A sealed value starts with `v1.<kid>.`, so SQL sees which key sealed it without decrypting:
  `split_part(column, '.', 2)` (no LIKE pattern, where `_` in a kid would be a wildcard). Counting
  per kid is one GROUP BY per column; re-encryption selects only values whose kid is not the
  current encrypting key's, so it is idempotent and resumable: run it again and it picks up
  whatever is left, including values a crashed run did not reach.
- Each value is rewritten with a compare-and-set on the OLD ciphertext
  (`UPDATE ... WHERE id = :id AND column = :old`): a value the service rewrote meanwhile (a new
  TOTP setup, sealed under the current key already) is left alone, never overwritten with an
  older plaintext. Batches are short transactions, so live requests wait at most for one batch.
- A value that cannot be opened (its kid is no longer in the ring, or it was tampered with) is
  counted and skipped, never rewritten; the caller reports it (naming the column, never values).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.keys.column import EncryptedText
from app.keys.data import DataKeyRing, SealedError, field_context
from app.models import Base

Sessions = async_sessionmaker[AsyncSession]

DEFAULT_BATCH_SIZE = 200


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    column: Column[Any]
    key: Column[Any]  # the one-column primary key

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    def context(self, row_id: str | int | uuid.UUID) -> bytes:
        return field_context(self.table.name, self.column.name, row_id)

    def kid(self) -> Any:
        """SQL: the kid a sealed value names (`v1.<kid>.<nonce>.<ct>`)."""
        return func.split_part(self.column, ".", 2)


def sealed_columns(metadata: Any = Base.metadata) -> list[SealedColumn]:
    """Every `EncryptedText` column of the app's tables, in a stable order."""
    found = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                keys = list(table.primary_key.columns)
                if len(keys) != 1:
                    raise TypeError(
                        f"{table.name}.{column.name}: an encrypted column needs a one-column "
                        "primary key (its value is bound to the row id)"
                    )
                found.append(SealedColumn(table, column, keys[0]))
    return found


async def count_by_kid(
    connection: AsyncConnection | AsyncSession, columns: Sequence[SealedColumn] | None = None
) -> dict[str, dict[str, int]]:
    """`{column name: {kid: values}}` for every sealed column (NULLs are not values)."""
    counts: dict[str, dict[str, int]] = {}
    for sealed in sealed_columns() if columns is None else columns:
        kid = sealed.kid()
        rows = await connection.execute(
            select(kid, func.count()).where(sealed.column.is_not(None)).group_by(kid)
        )
        counts[sealed.name] = {str(k): int(n) for k, n in rows}
    return counts


def totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Values per kid over every column."""
    merged: dict[str, int] = {}
    for per_kid in counts.values():
        for kid, count in per_kid.items():
            merged[kid] = merged.get(kid, 0) + count
    return merged


@dataclass
class Progress:
    """What a re-encryption did, per outcome (counts only)."""

    rewritten: int = 0
    changed_meanwhile: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # column -> values

    @property
    def done(self) -> int:
        return self.rewritten + self.changed_meanwhile + sum(self.unreadable.values())


async def reencrypt(
    sessions: Sessions,
    ring: DataKeyRing,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    columns: Sequence[SealedColumn] | None = None,
    advance: Callable[[int], None] | None = None,
) -> Progress:
    """Re-seal every value not under the ring's current encrypting key with that key.
    `advance(n)` is told after each batch how many values it handled."""
    current = ring.encrypting_key()
    if current is None:
        raise ValueError("DATA_KEYS holds no key that may encrypt now (every nbf is in the future)")
    progress = Progress()
    for sealed in sealed_columns() if columns is None else columns:
        after: Any = None
        while True:
            statement = (
                select(sealed.key, sealed.column)
                .where(sealed.column.is_not(None), sealed.kid() != current.kid)
                .order_by(sealed.key)
                .limit(batch_size)
            )
            if after is not None:
                statement = statement.where(sealed.key > after)
            async with sessions() as session:
                rows = (await session.execute(statement)).all()
                if not rows:
                    break
                for row_id, old in rows:
                    context = sealed.context(row_id)
                    try:
                        plaintext = ring.open(old, context)
                    except SealedError:
                        progress.unreadable[sealed.name] = (
                            progress.unreadable.get(sealed.name, 0) + 1
                        )
                        continue
                    new = ring.seal(plaintext, context)
                    result = await session.execute(
                        update(sealed.table)
                        .where(sealed.key == row_id, sealed.column == old)
                        .values({sealed.column.name: new})
                    )
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        progress.rewritten += 1
                    else:
                        progress.changed_meanwhile += 1
                await session.commit()
            after = rows[-1][0]
            if advance is not None:
                advance(len(rows))
    return progress
