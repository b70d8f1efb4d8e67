"""`python -m app migrate` as a process: it says what it ran, waits a bounded time for a server
that is not up yet, and a database it cannot use is ONE line naming the cause and the fix,
never a traceback and never a secret."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.support.private_services import PrivatePostgres, private_postgres
from tests.support.server import ROOT, base_env, free_port, run_cli
from tests.support.services import create_database, drop_database

#: The newest revision (what `migrate` ends at).
HEAD = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("migrate:")]


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    url = asyncio.run(create_database("migrate"))
    yield url
    asyncio.run(drop_database(url))


def test_migrate_says_what_it_ran_then_that_nothing_was_left(fresh_database_url: str) -> None:
    env = base_env(DATABASE_URL=fresh_database_url)
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "Running upgrade  -> 0001" in first.stderr
    assert "Running upgrade 0001 -> 0002" in first.stderr
    assert f"database at revision {HEAD}" in first.stderr
    second = run_cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr
    assert f"database at revision {HEAD}" in second.stderr


@pytest.mark.slow
def test_a_wrong_password_is_one_line_naming_the_cause_and_the_fix() -> None:
    right, wrong = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with private_postgres("scram-sha-256") as cluster:
        cluster.psql(f"CREATE ROLE app LOGIN PASSWORD '{right}'")
        cluster.psql("CREATE DATABASE app OWNER app")
        env = base_env(DATABASE_URL=cluster.url("app", "app"), DATABASE_PASSWORD=wrong)
        failed = run_cli("migrate", env=env)
        env["DATABASE_PASSWORD"] = right
        succeeded = run_cli("migrate", env=env)
    assert failed.returncode == 1
    output = failed.stdout + failed.stderr
    assert "Traceback" not in output
    (line,) = _problem_lines(failed.stderr)
    assert 'password authentication failed for user "app"' in line
    assert "docker compose down -v" in line
    assert "role's password" in line
    assert "retrying" not in output, "a wrong password is final: no retry"
    assert succeeded.returncode == 0, succeeded.stderr
    for result in (failed, succeeded):
        assert right not in result.stdout + result.stderr
        assert wrong not in result.stdout + result.stderr


def test_a_secret_in_any_output_line_is_masked() -> None:
    """alembic.ini's handler carries the app's redaction filter, and the error line is masked
    too: here the (contrived) database name IS the password, so both would show it."""
    password = secrets.token_urlsafe(24)
    env = base_env(
        DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{password}",
        DATABASE_PASSWORD=password,
    )
    result = run_cli("migrate", env=env)
    assert result.returncode == 1
    assert password not in result.stdout + result.stderr
    assert (
        "INFO  [alembic.env] database postgresql+asyncpg://postgres@127.0.0.1:5432/[REDACTED]"
        in (result.stderr)
    )
    (line,) = _problem_lines(result.stderr)
    assert 'database "[REDACTED]" does not exist' in line


def test_a_closed_port_is_retried_for_a_bounded_time_then_one_clear_line() -> None:
    port = free_port()
    env = base_env(DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/app")
    started = time.monotonic()
    result = run_cli("migrate", "--connect-timeout", "3", env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    retry, final = _problem_lines(result.stderr)
    assert "retrying for up to 3 s" in retry
    assert f"cannot connect to the database at 127.0.0.1:{port}/app" in final
    assert "ConnectionRefusedError" in final
    assert elapsed >= 3, "it gave up before its time"
    assert elapsed < 45, "the wait is bounded"  # generous: a busy machine starts Python slowly


@pytest.mark.slow
def test_migrate_waits_for_a_server_that_starts_late() -> None:
    """The compose race of issue 15: migrate starts while PostgreSQL does not accept TCP yet."""
    cluster = PrivatePostgres("trust")
    cluster.init()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "migrate", "--connect-timeout", "60"],
        cwd=ROOT,
        env=base_env(DATABASE_URL=cluster.url()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        before = []
        for line in process.stderr:  # until migrate says it is waiting (or exits)
            before.append(line)
            if "does not accept connections yet" in line:
                break
        assert process.poll() is None, "gave up instead of waiting: " + "".join(before)
        time.sleep(2)  # a few refused attempts more
        cluster.start()
        _, after = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cluster.cleanup()
    assert process.returncode == 0, after
    assert "Running upgrade  -> 0001" in after
