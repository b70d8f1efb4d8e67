"""users.role and users.email_verified; account_tokens (mailed single-use tokens); items

`role` and `email_verified` are plain columns of `users`, so the NOTIFY trigger of 0002 (AFTER
UPDATE, any column) already tells every replica when an admin demotes someone or an address is
verified; no trigger change is needed. Existing users become `user`, unverified.

`account_tokens` keeps only the SHA-256 of each mailed token (unique: one lookup by hash), and
`items` is the example resource; both go with their user (ON DELETE CASCADE).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant server default: PostgreSQL adds these without rewriting the table.
    op.add_column(
        "users", sa.Column("role", sa.String(length=16), nullable=False, server_default="user")
    )
    op.create_check_constraint("ck_users_role", "users", "role IN ('user', 'admin')")
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false()),
    )

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "purpose IN ('password_reset', 'email_verify')", name="ck_account_tokens_purpose"
        ),
        sa.UniqueConstraint("token_hash", name="account_tokens_token_hash_key"),
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"])

    op.create_table(
        "items",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "owner_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_items_owner_created", "items", ["owner_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_items_owner_created", table_name="items")
    op.drop_table("items")
    op.drop_index("ix_account_tokens_user_id", table_name="account_tokens")
    op.drop_table("account_tokens")
    op.drop_column("users", "email_verified")
    op.drop_constraint("ck_users_role", "users", type_="check")
    op.drop_column("users", "role")
