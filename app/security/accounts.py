"""User rows as the auth API needs them: the canonical email, lookups, creation, hash upgrades.

Each function opens its OWN short session from the sessionmaker and closes it before returning:
a login must not hold a pooled connection while argon2 runs (a login flood would otherwise
exhaust the pool and starve every other request, readiness included).
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete as sql_delete
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import User

MAX_EMAIL_LENGTH = 320

Sessions = async_sessionmaker[AsyncSession]


class DuplicateEmail(Exception):
    """An account with that email already exists."""


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co"} for char in text)


def folded(text: str) -> str:
    """Compatibility-normalised (NFKC: NFC/NFD and full-width spellings agree), trimmed,
    case-folded. The limiter keys even unusable account names this way."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def canonical_email(email: str) -> str:
    """The one spelling of an address that identifies an account (SPEC section 3): NFKC,
    case-insensitive, the domain in its IDNA (ASCII) form. ValueError (never quoting the input)
    when it is not a usable address."""
    candidate = folded(email)
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH or has_control_characters(candidate):
        raise ValueError("must be a valid email address")
    try:
        valid = validate_email(
            candidate,
            check_deliverability=False,
            globally_deliverable=False,
            test_environment=True,
        )
    except EmailNotValidError:
        raise ValueError("must be a valid email address") from None
    return f"{valid.local_part.casefold()}@{valid.ascii_domain.lower()}"


def canonical_or_none(email: str) -> str | None:
    try:
        return canonical_email(email)
    except ValueError:
        return None


@dataclass(frozen=True)
class Credentials:
    """What a login needs of a user row, read in one short transaction."""

    id: uuid.UUID
    email: str
    is_active: bool
    role: str
    email_verified: bool
    mfa_enabled: bool
    password_hash: str = field(repr=False)


_CREDENTIALS = (
    User.id, User.email, User.is_active, User.role, User.email_verified, User.mfa_enabled,
    User.password_hash,
)  # fmt: skip


async def credentials(sessions: Sessions, email: str) -> Credentials | None:
    async with sessions() as session:
        row = (await session.execute(select(*_CREDENTIALS).where(User.email == email))).first()
    return Credentials(*row) if row is not None else None


async def create(session: AsyncSession, email: str, password_hash: str) -> uuid.UUID:
    """Insert the account; DuplicateEmail if the address is taken. `ON CONFLICT DO NOTHING`
    rather than catching a unique violation: PostgreSQL would log the failed statement with the
    address in it."""
    inserted = await session.execute(
        insert(User)
        .values(id=uuid.uuid4(), email=email, password_hash=password_hash, is_active=True)
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.id)
    )
    user_id = inserted.scalar_one_or_none()
    await session.commit()
    if user_id is None:
        raise DuplicateEmail()
    return user_id


async def replace_hash(sessions: Sessions, user_id: uuid.UUID, password_hash: str) -> None:
    async with sessions() as session:
        await session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )
        await session.commit()


#: For request models: pydantic turns its ValueError into a 422 that does not echo the input.
checked_email = canonical_email


async def credentials_by_id(sessions: Sessions, user_id: uuid.UUID) -> Credentials | None:
    async with sessions() as session:
        row = (await session.execute(select(*_CREDENTIALS).where(User.id == user_id))).first()
    return Credentials(*row) if row is not None else None


async def email_of(sessions: Sessions, user_id: uuid.UUID) -> str | None:
    async with sessions() as session:
        return (
            await session.execute(select(User.email).where(User.id == user_id))
        ).scalar_one_or_none()


async def active_id_by_email(sessions: Sessions, email: str) -> uuid.UUID | None:
    async with sessions() as session:
        return (
            await session.execute(select(User.id).where(User.email == email, User.is_active))
        ).scalar_one_or_none()


async def delete(sessions: Sessions, user_id: uuid.UUID) -> bool:
    """Delete the account; what it owns goes with it (foreign keys ON DELETE CASCADE)."""
    async with sessions() as session:
        deleted = await session.execute(
            sql_delete(User).where(User.id == user_id).returning(User.id)
        )
        await session.commit()
    return deleted.scalar_one_or_none() is not None


async def set_password(
    session: AsyncSession, user_id: uuid.UUID, password_hash: str, *, verified: bool = False
) -> None:
    """New password hash (in the caller's transaction); `verified` also marks the email."""
    values: dict[str, object] = {"password_hash": password_hash}
    if verified:
        values["email_verified"] = True
    await session.execute(update(User).where(User.id == user_id).values(**values))


async def mark_verified(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(update(User).where(User.id == user_id).values(email_verified=True))
