"""Single-use tokens mailed to a user: password reset and email verification.

A token is 256 random bits, shown once (in the mail); the database keeps only its SHA-256 (a
dump yields nothing usable, and a fast hash is right for a value that random). Using one is ONE
conditional UPDATE (`used_at IS NULL AND expires_at > now()`), so of two concurrent uses at most
one wins, and an expired or used token is refused without telling which.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AccountToken, TokenPurpose

Sessions = async_sessionmaker[AsyncSession]

#: Longest token accepted (a real one is 43 characters); anything longer is refused unhashed.
MAX_TOKEN_LENGTH = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue(sessions: Sessions, user_id: uuid.UUID, purpose: TokenPurpose, ttl: int) -> str:
    """A new token for `user_id`; the caller mails it and forgets it."""
    token = secrets.token_urlsafe(32)
    async with sessions() as session:
        await session.execute(
            insert(AccountToken).values(
                id=uuid.uuid4(),
                user_id=user_id,
                purpose=purpose,
                token_hash=_digest(token),
                expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
            )
        )
        await session.commit()
    return token


async def consume(session: AsyncSession, token: str, purpose: TokenPurpose) -> uuid.UUID | None:
    """Use `token` up (in the caller's transaction) and return its user, or None when it is
    unknown, of another purpose, expired or already used."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    used = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == _digest(token),
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AccountToken.user_id)
    )
    return used.scalar_one_or_none()
