"""users MFA columns (sealed TOTP seed, enabled flag, last accepted step); mfa_recovery_codes;
api_keys

`users.mfa_secret` holds the TOTP seed SEALED with DATA_KEYS (`v1.<kid>.<nonce>.<ct>`, bound to
the row and column), never the seed; `mfa_last_step` is the last accepted TOTP time step, moved
forward by one conditional UPDATE per accepted code so no two replicas accept the same code. A
CHECK keeps `mfa_enabled` from being true without a seed. The new columns are nullable or have a
constant default: PostgreSQL adds them without rewriting `users`, and the 0002 trigger already
notifies replicas of every UPDATE (no trigger change).

`mfa_recovery_codes` and `api_keys` keep hashes only (SHA-256; the plaintext is shown once) and
go with their user (ON DELETE CASCADE). Recovery codes are found by (user, hash), API keys by the
public `lookup_id` (unique); the owner index serves the keyset-paginated key list.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("mfa_secret", sa.Text(), nullable=True))
    op.add_column(
        "users",
        sa.Column("mfa_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("users", sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        "ck_users_mfa_enabled_has_secret", "users", "NOT mfa_enabled OR mfa_secret IS NOT NULL"
    )

    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("user_id", "code_hash", name="uq_mfa_recovery_codes_user_hash"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "owner_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("lookup_id", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.String(length=32)),
            nullable=False,
            server_default="{}",
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("lookup_id", name="api_keys_lookup_id_key"),
    )
    op.create_index("ix_api_keys_owner_created", "api_keys", ["owner_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner_created", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("mfa_recovery_codes")
    op.drop_constraint("ck_users_mfa_enabled_has_secret", "users", type_="check")
    op.drop_column("users", "mfa_last_step")
    op.drop_column("users", "mfa_enabled")
    op.drop_column("users", "mfa_secret")
