"""The real server process, over TCP: `python -m app serve` and `python -m app migrate`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.server import PRODUCTION, free_port, run_cli, serve


def test_serve_answers_ready_over_tcp(server_env: dict[str, str], tmp_path: Path) -> None:
    with serve(server_env, tmp_path) as server:
        response = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_serve_writes_no_core_dumps(server_env: dict[str, str], tmp_path: Path) -> None:
    """A crash must not put the process's memory (secrets included) in a core file."""
    with serve(server_env, tmp_path) as server:
        limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core


def test_ready_is_503_within_its_budget_when_redis_port_is_closed(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with serve(env, tmp_path) as server:
        started = time.monotonic()
        ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        elapsed = time.monotonic() - started
        live = httpx.get(f"{server.url}/health/live", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] != "ok"
    assert elapsed < 5  # the 2 s check budget, with margin for a busy machine
    assert live.status_code == 200


def test_serve_exits_nonzero_naming_the_missing_secret(server_env: dict[str, str]) -> None:
    env = {k: v for k, v in server_env.items() if k != "JWT_KEYS"}
    result = run_cli("serve", env=env, timeout=20)
    assert result.returncode != 0
    assert "JWT_KEYS" in result.stderr


def test_migrate_is_idempotent(server_env: dict[str, str]) -> None:
    first = run_cli("migrate", env=server_env)
    second = run_cli("migrate", env=server_env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr


def test_migrate_needs_only_the_database_secrets(server_env: dict[str, str]) -> None:
    """Least privilege for the migration job: no JWT key ring, even in production."""
    env = {k: v for k, v in server_env.items() if k != "JWT_KEYS"}
    result = run_cli("migrate", env={**env, **PRODUCTION})
    assert result.returncode == 0, result.stderr
    assert "JWT_KEYS" not in result.stderr


def test_migrate_still_fails_fast_on_a_bad_database_secret(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, "DATABASE_PASSWORD_FILE": str(tmp_path / "missing")}
    result = run_cli("migrate", env=env)
    assert result.returncode != 0
    assert "DATABASE_PASSWORD" in result.stderr
