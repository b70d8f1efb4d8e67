"""Database tables. Schema changes go through Alembic migrations, never `create_all`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.keys.column import EncryptedText
from app.keys.data import Sealed

Role = Literal["user", "admin"]
TokenPurpose = Literal["password_reset", "email_verify"]


class Base(DeclarativeBase):
    pass


class User(Base):
    """An account. The TOTP second factor lives here: `mfa_secret` is the seed SEALED with
    `DATA_KEYS` (bound to this row and column, `field_context("users", "mfa_secret", id)`),
    written by setup and cleared by disable; `mfa_enabled` is set once a code confirmed it (a
    seed without it is a pending setup). `mfa_last_step` is the last accepted TOTP time step:
    replicas accept a code only by moving it forward in ONE conditional UPDATE."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
        CheckConstraint(
            "NOT mfa_enabled OR mfa_secret IS NOT NULL", name="ck_users_mfa_enabled_has_secret"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    role: Mapped[Role] = mapped_column(String(16), default="user", server_default="user")
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    mfa_secret: Mapped[Sealed | None] = mapped_column(EncryptedText, nullable=True)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    def __repr__(self) -> str:  # no hash in reprs or logs
        return f"User(id={self.id!s}, email=<redacted>)"


class AccountToken(Base):
    """A single-use token mailed to a user (password reset, email verification).

    Only `token_hash` (SHA-256 of a random token of at least 256 bits) is stored: a database dump
    yields no usable token. `used_at` makes it single-use; the row goes with its user."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('password_reset', 'email_verify')", name="ck_account_tokens_purpose"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[TokenPurpose] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:
        return f"AccountToken(id={self.id!s}, purpose={self.purpose})"


class Item(Base):
    """The example resource (`app/api/routes/items.py`): rows owned by a user, deleted with it.

    The index serves the one query shape the API uses: a user's items, newest first, resumed
    after a (created_at, id) cursor."""

    __tablename__ = "items"
    __table_args__ = (Index("ix_items_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class MfaRecoveryCode(Base):
    """One of a user's recovery codes, as a hash only (`app.security.totp.hash_recovery_code`:
    SHA-256 over the user id and the 80-bit code). Found by (user, hash); `used_at` makes it
    single-use through a conditional UPDATE. Replaced as a set when MFA is enabled again."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (
        UniqueConstraint("user_id", "code_hash", name="uq_mfa_recovery_codes_user_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:
        return f"MfaRecoveryCode(id={self.id!s})"


class ApiKey(Base):
    """A machine client's key (`app.security.api_keys`): only `key_hash` is stored; `lookup_id`
    (the public part after `fst_`) finds the row through its unique index. `scopes` were checked
    against the owner's when the key was made, and are intersected with the owner's LIVE scopes
    on every use. Deleted with its owner."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    lookup_id: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:  # never the hash
        return f"ApiKey(id={self.id!s}, lookup_id={self.lookup_id})"
