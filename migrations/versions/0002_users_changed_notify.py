"""users: NOTIFY users_changed after every UPDATE, DELETE and TRUNCATE

Each replica caches the user fields auth needs (app/user_status.py) and LISTENs on
`users_changed`; this trigger is what makes a disable or a delete reach every replica within
milliseconds. It is ENABLE ALWAYS so it also fires for sessions in `session_replication_role =
replica` (pg_restore --disable-triggers, logical replication apply), which would otherwise change
users silently.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CREATE OR REPLACE / DROP IF EXISTS: safe to re-run by hand on a partly migrated database.
    op.execute("""
        CREATE OR REPLACE FUNCTION users_changed_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('users_changed', '*');
            ELSE
                PERFORM pg_notify('users_changed', OLD.id::text);
            END IF;
            RETURN NULL;
        END
        $$
    """)
    op.execute("DROP TRIGGER IF EXISTS users_changed ON users")
    op.execute("""
        CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_changed_notify()
    """)
    op.execute("DROP TRIGGER IF EXISTS users_truncated ON users")
    op.execute("""
        CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION users_changed_notify()
    """)
    op.execute("ALTER TABLE users ENABLE ALWAYS TRIGGER users_changed")
    op.execute("ALTER TABLE users ENABLE ALWAYS TRIGGER users_truncated")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS users_truncated ON users")
    op.execute("DROP TRIGGER IF EXISTS users_changed ON users")
    op.execute("DROP FUNCTION IF EXISTS users_changed_notify()")
