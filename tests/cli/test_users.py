"""`python -m app users create-superuser` against the real database, as a process: create (the
password from standard input, a file, or a terminal prompt without echo), promote, run twice,
refuse bad input, and never print the password or the address."""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.api.auth_helpers import login, new_email, register
from tests.support.server import free_port, run_cli
from tests.support.services import asyncpg_dsn
from tests.support.terminal import on_a_terminal

COMMAND = ("users", "create-superuser")


@pytest.fixture
def env(server_env: dict[str, str]) -> dict[str, str]:
    return server_env


async def _account(database_url: str, email: str) -> asyncpg.Record | None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await connection.fetchrow(
            "SELECT id, email, role, email_verified, is_active, password_hash "
            "FROM users WHERE email = $1",
            email,
        )
    finally:
        await connection.close()


def _assert_private(output: str, *values: str) -> None:
    for value in values:
        assert value not in output


async def test_creates_an_admin_from_standard_input(
    env: dict[str, str], database_url: str, client: httpx.AsyncClient
) -> None:
    email, password = new_email(), secrets.token_urlsafe(12)
    result = run_cli(*COMMAND, "--email", email, env=env, input=password + "\n")
    assert result.returncode == 0, result.stderr
    row = await _account(database_url, email)
    assert row is not None
    assert result.stdout.startswith(f"created admin account {row['id']}")
    assert (row["role"], row["email_verified"], row["is_active"]) == ("admin", True, True)
    assert row["password_hash"].startswith("$argon2id$")
    _assert_private(result.stdout + result.stderr, password, email)
    # The app's own login accepts it: same hasher, same canonical email.
    assert (await login(client, email, password)).status_code == 200


async def test_the_email_is_stored_in_its_canonical_form(
    env: dict[str, str], database_url: str
) -> None:
    email = new_email()
    spelled = f"  {email.upper()} "
    result = run_cli(*COMMAND, "--email", spelled, env=env, input="a-long-password\n")
    assert result.returncode == 0, result.stderr
    assert await _account(database_url, email) is not None


async def test_password_file_drops_one_trailing_newline(
    env: dict[str, str], tmp_path: Path, client: httpx.AsyncClient
) -> None:
    email, password = new_email(), "file password " + secrets.token_hex(4)
    password_file = tmp_path / "pw"
    password_file.write_text(password + "\n")
    result = run_cli(*COMMAND, "--email", email, "--password-file", str(password_file), env=env)
    assert result.returncode == 0, result.stderr
    assert (await login(client, email, password)).status_code == 200
    _assert_private(result.stdout + result.stderr, password)


async def test_running_it_twice_changes_nothing_the_second_time(
    env: dict[str, str], database_url: str
) -> None:
    email = new_email()
    first = run_cli(*COMMAND, "--email", email, env=env, input="first-password\n")
    assert first.returncode == 0, first.stderr
    before = await _account(database_url, email)
    second = run_cli(*COMMAND, "--email", email, env=env)  # no password needed, none read
    assert second.returncode == 0, second.stderr
    assert "already an admin: nothing changed" in second.stdout
    assert await _account(database_url, email) == before


async def test_promotes_an_existing_account_which_keeps_its_password(
    env: dict[str, str], database_url: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    email = new_email()
    await register(client, email)
    assert (await _account(database_url, email))["role"] == "user"  # type: ignore[index]
    unused = tmp_path / "unused"
    unused.write_text("another-password\n")
    result = run_cli(*COMMAND, "--email", email, "--password-file", str(unused), env=env)
    assert result.returncode == 0, result.stderr
    row = await _account(database_url, email)
    assert row is not None
    assert result.stdout.startswith(f"promoted account {row['id']} to admin")
    assert "--password-file was not read" in result.stdout
    assert row["role"] == "admin"
    assert row["email_verified"] is False  # promotion vouches for the role, not the address
    assert (await login(client, email)).status_code == 200  # the old password still works
    assert (await login(client, email, "another-password")).status_code == 401


async def test_promoting_a_deactivated_account_says_so(
    env: dict[str, str], database_url: str, client: httpx.AsyncClient
) -> None:
    email = new_email()
    await register(client, email)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("UPDATE users SET is_active = false WHERE email = $1", email)
    finally:
        await connection.close()
    result = run_cli(*COMMAND, "--email", email, env=env)
    assert result.returncode == 0, result.stderr
    assert "is deactivated" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        (["--email", "not an email"], "a-long-password\n", "--email must be a valid email"),
        ([], "short\n", "8 to 128 characters"),
        ([], "x" * 129 + "\n", "8 to 128 characters"),
        ([], "", "no password given"),
        ([], "\n", "no password given"),
        (["--password-file", "/nonexistent/pw"], None, "--password-file cannot be read"),
    ],
)
async def test_invalid_input_exits_2_and_creates_nothing(
    env: dict[str, str],
    database_url: str,
    arguments: list[str],
    stdin: str | None,
    message: str,
) -> None:
    email = new_email()
    if "--email" not in arguments:
        arguments = ["--email", email, *arguments]
    result = run_cli(*COMMAND, *arguments, env=env, input=stdin if stdin is not None else "")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert await _account(database_url, email) is None
    if stdin and stdin.strip():
        _assert_private(result.stdout + result.stderr, stdin.strip())


@pytest.mark.parametrize("form", [["--password", "argv-pw-123"], ["--password=argv-pw-123"]])
def test_a_password_on_the_command_line_is_refused_without_echo(
    env: dict[str, str], form: list[str]
) -> None:
    result = run_cli(*COMMAND, "--email", new_email(), *form, env=env)
    assert result.returncode == 2
    assert "--password is refused" in result.stderr
    _assert_private(result.stdout + result.stderr, "argv-pw-123")


def test_an_unreachable_database_exits_1(env: dict[str, str]) -> None:
    down = {**env, "DATABASE_URL": f"postgresql+asyncpg://app@127.0.0.1:{free_port()}/app"}
    result = run_cli(*COMMAND, "--email", new_email(), env=down, input="a-long-password\n")
    assert result.returncode == 1
    assert result.stderr.startswith("error: the database is unavailable (")
    assert "Traceback" not in result.stderr


async def test_a_terminal_is_prompted_twice_without_echo(
    env: dict[str, str], database_url: str
) -> None:
    email, password = new_email(), secrets.token_urlsafe(12)
    _, transcript = on_a_terminal(env, *COMMAND, "--email", email, answers=[password, password])
    assert "Password for the new admin:" in transcript
    assert "Repeat it:" in transcript
    assert "created admin account" in transcript
    assert password not in transcript  # echo was off while it was typed
    row = await _account(database_url, email)
    assert row is not None
    assert row["role"] == "admin"


async def test_a_terminal_with_mismatched_passwords_creates_nothing(
    env: dict[str, str], database_url: str
) -> None:
    email = new_email()
    _, transcript = on_a_terminal(
        env, *COMMAND, "--email", email, answers=["first-password", "second-password"]
    )
    assert "the passwords do not match" in transcript
    assert await _account(database_url, email) is None
