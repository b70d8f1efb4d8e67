"""`users create-superuser --email E [--password-file F]`: create an admin, or promote one.

The password never comes from the command line (argv is visible in `ps`, shell history and CI
logs): it is read from `--password-file` (one trailing newline dropped), or from standard input:
prompted twice without echo on a terminal, else one line (`... < file`, a pipe, a secret mount).

Idempotent: an existing account (the email is compared in its canonical form) is promoted to
admin and keeps its password, so its password is not asked for; an admin stays as it is. A new
account is created as an admin with a verified email. Output names the account by id, never by
address, and never shows the password.

Exit status: 0 done (created, promoted or already an admin), 1 configuration or database
problem, 2 invalid input (email, password, password file, or a `--password` argument).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.common import load_settings, report
from app.config import SECRETS, Settings
from app.db import DATABASE_SECRETS, create_engine, create_sessionmaker
from app.models import User
from app.secrets import ConfigError, SecretStore
from app.security.accounts import checked_email
from app.security.passwords import PasswordHasher

# The register endpoint's rules (SPEC section 3): 8..128 characters, no composition rules.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

DONE, FAILED, INVALID = 0, 1, 2


class InvalidInput(Exception):
    """Bad input; the message says what is wrong and never quotes a password."""


class _RefusePassword(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(  # never echoes the value, unlike argparse's "unrecognized arguments"
            "--password is refused: a password on the command line leaks into shell history "
            "and `ps`; pipe it to standard input or use --password-file"
        )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("users", help="manage accounts")
    actions = group.add_subparsers(dest="action", required=True, metavar="<action>")
    create = actions.add_parser(
        "create-superuser",
        help="create an admin account, or promote an existing one (idempotent)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("--email", required=True, help="the account's email address")
    create.add_argument(
        "--password-file",
        type=Path,
        help="read the password from this file (default: standard input)",
    )
    create.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    create.set_defaults(handler=create_superuser_command)


@dataclass(frozen=True)
class Outcome:
    user_id: uuid.UUID
    action: str  # "created" | "promoted" | "unchanged"
    is_active: bool = True


def create_superuser_command(args: argparse.Namespace) -> int:
    try:
        email = checked_email(args.email)
    except ValueError:
        return _invalid("--email must be a valid email address")
    try:
        settings = load_settings()
    except ConfigError as exc:
        return report(exc)
    try:
        outcome = asyncio.run(_create_or_promote(settings, email, lambda: _password(args)))
    except InvalidInput as exc:
        return _invalid(str(exc))
    except ConfigError as exc:
        return report(exc)
    except (OSError, SQLAlchemyError, TimeoutError) as exc:
        # The type only: driver messages may quote connection details.
        print(f"error: the database is unavailable ({type(exc).__name__})", file=sys.stderr)
        return FAILED
    _say(outcome, args.password_file)
    return DONE


def _invalid(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return INVALID


def _say(outcome: Outcome, password_file: Path | None) -> None:
    account = f"account {outcome.user_id}"
    if outcome.action == "created":
        print(f"created admin {account} (email verified)")
        return
    if outcome.action == "promoted":
        print(f"promoted {account} to admin; it keeps its password")
        print("its earlier access tokens lack the admin scope: sign in again to get one")
    else:
        print(f"{account} is already an admin: nothing changed")
    if password_file is not None:
        print("--password-file was not read: an existing account keeps its password")
    if not outcome.is_active:
        print(f"note: {account} is deactivated, so it cannot sign in")


async def _create_or_promote(
    settings: Settings, email: str, read_password: Callable[[], str]
) -> Outcome:
    """Promote the account with `email`, or create it (asking for the password only then)."""
    store = await SecretStore.open(settings, SECRETS, only=DATABASE_SECRETS)
    engine = create_engine(settings, store)
    hasher = PasswordHasher()
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            existing = await session.scalar(select(User).where(User.email == email))
            if existing is not None:
                return await _promote(session, existing)
            password_hash = await hasher.hash(read_password())
            user = User(
                id=uuid.uuid4(),
                email=email,
                password_hash=password_hash,
                is_active=True,
                role="admin",
                email_verified=True,
            )
            session.add(user)
            try:
                await session.commit()
            except IntegrityError:  # created meanwhile (another run, a registration)
                await session.rollback()
                raced = await session.scalar(select(User).where(User.email == email))
                if raced is None:
                    raise
                return await _promote(session, raced)
            return Outcome(user.id, "created")
    finally:
        hasher.close()
        await engine.dispose()
        await store.aclose()


async def _promote(session: AsyncSession, user: User) -> Outcome:
    if user.role == "admin":
        return Outcome(user.id, "unchanged", user.is_active)
    await session.execute(update(User).where(User.id == user.id).values(role="admin"))
    await session.commit()
    return Outcome(user.id, "promoted", user.is_active)


def _password(args: argparse.Namespace) -> str:
    """The new account's password, from the file or standard input, checked like register's."""
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--password-file cannot be read ({type(exc).__name__})") from None
        password = _drop_newline(password)
    elif sys.stdin.isatty():
        password = getpass.getpass("Password for the new admin: ")
        if getpass.getpass("Repeat it: ") != password:
            raise InvalidInput("the passwords do not match")
    else:
        password = _drop_newline(sys.stdin.readline())
    if not password:
        raise InvalidInput("no password given (standard input or --password-file was empty)")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )
    return password


def _drop_newline(text: str) -> str:
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text
