"""`config check`: a table of every setting with its SOURCE (env, file, dir, ...) and status,
never a secret value; exit 1 with one line per problem."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.support.server import PRODUCTION, base_env, run_cli


def rows(stdout: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].isupper() and parts[0] != "SETTING":
            table[parts[0]] = parts[1:]
    return table


def test_shows_each_secret_source_and_no_value(tmp_path: Path) -> None:
    jwt_keys = "check-env-" + secrets.token_urlsafe(40)
    db_password = "check-file-" + secrets.token_urlsafe(24)
    redis_password = "check-dir-" + secrets.token_urlsafe(24)
    password_file = tmp_path / "db-password"
    password_file.write_text(db_password + "\n")
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "redis_password").write_text(redis_password)
    env = base_env(
        JWT_KEYS=jwt_keys,
        DATABASE_PASSWORD_FILE=str(password_file),
        SECRETS_DIR=str(mount),
        DATABASE_URL="postgresql+asyncpg://app:inline-pw@db/app",
    )
    result = run_cli("config", "check", env=env, timeout=30)

    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert table["JWT_KEYS"][:2] == ["env", "ok"]
    assert table["DATABASE_PASSWORD"][:2] == ["file", "ok"]
    assert f"DATABASE_PASSWORD_FILE={password_file}" in table["DATABASE_PASSWORD"][2]
    assert table["REDIS_PASSWORD"][:2] == ["dir", "ok"]
    assert str(mount / "redis_password") in table["REDIS_PASSWORD"][2]
    assert table["DATABASE_CREDENTIALS"][:2] == ["-", "not"]  # "not set"
    assert table["APP_ENV"][:2] == ["env", "ok"]
    assert table["JWT_ISSUER"][:2] == ["default", "ok"]
    assert table["DATABASE_URL"][1] == "warning"  # a password in the URL is discouraged
    assert "app:***@db" in table["DATABASE_URL"][2]
    output = result.stdout + result.stderr
    for value in (jwt_keys, db_password, redis_password, "inline-pw"):
        assert value not in output
    assert "OK:" in result.stdout


def test_problems_exit_1_with_the_table_and_one_line_each(tmp_path: Path) -> None:
    leaked = "check-bad-" + secrets.token_urlsafe(8)
    env = base_env(**PRODUCTION, JWT_KEYS=leaked, REDIS_PASSWORD_FILE=str(tmp_path / "missing"))
    result = run_cli("config", "check", env=env, timeout=30)

    assert result.returncode == 1
    table = rows(result.stdout)
    assert table["JWT_KEYS"][:2] == ["env", "error"]
    assert table["REDIS_PASSWORD"][:2] == ["file", "error"]
    assert table["DATABASE_PASSWORD"][:2] == ["-", "not"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 3
    assert any(line.startswith("config error: JWT_KEYS (from env JWT_KEYS)") for line in errors)
    # Production requires the data keys; nothing is generated there.
    assert table["DATA_KEYS"][:2] == ["-", "error"]
    assert any(
        "DATA_KEYS (searched" in line and "required in production" in line for line in errors
    )
    assert any(
        line.startswith("config error: REDIS_PASSWORD (from REDIS_PASSWORD_FILE=")
        for line in errors
    )
    assert leaked not in result.stdout + result.stderr


def test_development_reports_a_generated_jwt_key(tmp_path: Path) -> None:
    env = base_env(APP_ENV="development")
    result = run_cli("config", "check", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(result.stdout)["JWT_KEYS"][:2] == ["generated", "generated"]
    assert "secrets init" in result.stderr  # the warning says how to make persistent ones


def test_dotenv_is_read_in_development_only(tmp_path: Path) -> None:
    dotenv_key = "dotenv-" + secrets.token_urlsafe(40)
    (tmp_path / ".env").write_text(f"JWT_KEYS={dotenv_key}\nJWT_ISSUER=from-dotenv\n")

    development = run_cli("config", "check", env=base_env(APP_ENV="development"), cwd=tmp_path)
    assert development.returncode == 0, development.stdout + development.stderr
    table = rows(development.stdout)
    assert table["JWT_KEYS"][:2] == ["env", "ok"]  # a .env value is an environment value
    assert table["JWT_ISSUER"][:2] == [".env", "ok"]

    production = run_cli("config", "check", env=base_env(APP_ENV="production"), cwd=tmp_path)
    assert production.returncode == 1
    assert rows(production.stdout)["JWT_KEYS"][1] == "error"
    assert "config error: JWT_KEYS (searched" in production.stderr
    # Not from .env: the default, which production refuses (it names the template, not you).
    assert rows(production.stdout)["JWT_ISSUER"][:2] == ["default", "error"]
    assert "config error: JWT_ISSUER (from default)" in production.stderr
    for result in (development, production):
        assert dotenv_key not in result.stdout + result.stderr


def test_passwords_in_url_queries_are_masked_too(tmp_path: Path) -> None:
    hidden = "query-" + secrets.token_urlsafe(12)
    env = base_env(
        DATABASE_URL=f"postgresql+asyncpg://app@db:5432/app?sslmode=prefer&password={hidden}",
        JWT_KEYS=secrets.token_urlsafe(48),
    )
    result = run_cli("config", "check", env=env, cwd=tmp_path, timeout=30)
    assert hidden not in result.stdout + result.stderr
    assert rows(result.stdout)["DATABASE_URL"][1] == "warning"
    assert "password=***" in result.stdout
