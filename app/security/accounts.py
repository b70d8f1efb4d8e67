"""User rows as the auth API needs them: lookups, creation, password-hash upgrades."""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User

MAX_EMAIL_LENGTH = 320


class DuplicateEmail(Exception):
    """An account with that email already exists."""


def normalize_email(email: str) -> str:
    """One spelling per account: trimmed and lower-cased (login uses the same rule)."""
    return email.strip().lower()


def checked_email(email: str) -> str:
    """Validate syntax and return the normalised form; the error never quotes the input."""
    candidate = normalize_email(email)
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise ValueError("must be a valid email address")
    try:
        validate_email(
            candidate, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError:
        raise ValueError("must be a valid email address") from None
    return candidate


async def by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email))
    return result.scalar_one_or_none()


async def create(session: AsyncSession, email: str, password_hash: str) -> User:
    user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, is_active=True)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise DuplicateEmail() from None
    return user


async def replace_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )
    await session.commit()
