"""`secrets init [--dir DIR]`: creates the MISSING dev secret files with strong random values
(0600, in a 0700 dir), never overwrites, and prints what it did, never a value. The same code
runs as a plain standard-library script, which is how `make up` calls it before any install."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server import ROOT, base_env, run_cli

FILES = ("jwt_keys", "database_password", "redis_password")
SCRIPT = ROOT / "app" / "secrets" / "devfiles.py"


def run_script(directory: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`-I -S`: no site-packages, no PYTHONPATH, no user dirs: only the standard library."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "--dir", str(directory)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_command(directory: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("secrets", "init", "--dir", str(directory), env=base_env(), cwd=cwd)


RUNNERS = {"script": run_script, "command": run_command}


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def values(directory: Path) -> dict[str, str]:
    return {name: (directory / name).read_text() for name in FILES}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_creates_every_missing_file_with_strong_values(runner: str, tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    started = int(time.time())
    result = RUNNERS[runner](directory, tmp_path)
    assert result.returncode == 0, result.stderr

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in FILES:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
        assert f"created {directory / name}" in result.stdout
    created = values(directory)
    for value in created.values():
        assert value.endswith("\n")
        assert not value.endswith("\n\n")
        assert value.strip() not in result.stdout + result.stderr
    for name in ("database_password", "redis_password"):
        assert len(created[name].strip()) >= 32
    assert created["database_password"] != created["redis_password"]

    ring = json.loads(created["jwt_keys"])
    assert len(ring["keys"]) == 1
    key = ring["keys"][0]
    assert set(key) == {"kty", "kid", "alg", "k", "iat"}
    assert (key["kty"], key["alg"]) == ("oct", "HS256")
    assert len(b64url_decode(key["k"])) == 64
    assert "=" not in key["k"]
    assert started - 1 <= key["iat"] <= time.time() + 1
    canonical = json.dumps({"k": key["k"], "kty": "oct"}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert key["kid"] == thumbprint.decode().rstrip("=")  # RFC 7638


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_never_overwrites_and_says_so(runner: str, tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "database_password").write_text("chosen-by-the-developer\n")
    first = RUNNERS[runner](directory, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"kept    {directory / 'database_password'}" in first.stdout
    assert f"created {directory / 'jwt_keys'}" in first.stdout
    assert (directory / "database_password").read_text() == "chosen-by-the-developer\n"
    assert "chosen-by-the-developer" not in first.stdout + first.stderr

    before = values(directory)
    second = RUNNERS[runner](directory, tmp_path)
    assert second.returncode == 0, second.stderr
    assert values(directory) == before
    assert "created" not in second.stdout
    assert second.stdout.count("kept") == len(FILES)


def test_default_directory_is_secrets_in_the_working_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == sorted(FILES)


def test_makefile_up_runs_secrets_init_inside_the_app_image() -> None:
    makefile = (ROOT / "Makefile").read_text()
    up = makefile.split("\nup:", 1)[1].split("\n\n", 1)[0]
    assert "$(APP_IMAGE) secrets init --dir /secrets" in up


def test_generated_files_pass_the_production_checks(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    assert run_script(directory, tmp_path).returncode == 0
    result = run_cli(
        "config",
        "check",
        env=base_env(APP_ENV="production", SECRETS_DIR=str(directory)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in FILES:
        assert f"SECRETS_DIR {directory / name}" in result.stdout
    for value in values(directory).values():
        assert value.strip() not in result.stdout + result.stderr
