"""`secrets init [--dir DIR]` (SPEC section 5): creates the MISSING dev secret file of every
declared secret that has a development generator, with strong random values (0600, in a 0700
dir), never overwrites, refuses places others can read, and prints what it did, never a value."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from app.config import SECRETS
from app.keys.signing import KeyRing, jwk_thumbprint
from tests.support.server import PRODUCTION, base_env, run_cli

#: Derived from the declarations: every secret with a development generator gets a file.
FILES = tuple(spec.file_name for spec in SECRETS if spec.generate is not None)


def init(directory: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = ("secrets", "init") + (("--dir", str(directory)) if directory is not None else ())
    return run_cli(*args, env=base_env(), cwd=cwd)


def values(directory: Path) -> dict[str, str]:
    return {name: (directory / name).read_text() for name in FILES}


def test_the_declared_generators_are_the_files() -> None:
    assert {"jwt_keys", "data_keys", "database_password", "redis_password", "metrics_token"} <= set(
        FILES
    )
    assert "database_credentials" not in FILES  # no generator: a lease is not a dev value


def test_creates_every_missing_file_with_strong_values(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    result = init(directory, tmp_path)
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
    passwords = [created[n].strip() for n in ("database_password", "redis_password")]
    assert all(len(p) >= 32 for p in passwords)
    assert len(set(passwords)) == 2

    ring = KeyRing.parse(created["jwt_keys"])
    assert len(ring) == 1
    key = json.loads(created["jwt_keys"])["keys"][0]
    assert key["kty"] == "oct"
    assert key["kid"] == jwk_thumbprint(key)  # RFC 7638
    assert ring.weak_key_problems() == []


def test_never_overwrites_and_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    mine = directory / "database_password"
    mine.write_text("chosen-by-the-developer\n")
    mine.chmod(0o600)
    first = init(directory, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"kept    {mine}" in first.stdout
    assert f"created {directory / 'jwt_keys'}" in first.stdout
    assert mine.read_text() == "chosen-by-the-developer\n"
    assert "chosen-by-the-developer" not in first.stdout + first.stderr

    before = values(directory)
    second = init(directory, tmp_path)
    assert second.returncode == 0, second.stderr
    assert values(directory) == before
    assert "created" not in second.stdout
    assert second.stdout.count("kept") == len(FILES)


def test_default_directory_is_secrets_in_the_working_directory(tmp_path: Path) -> None:
    result = init(None, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == sorted(FILES)


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
def test_refuses_a_directory_others_can_enter_or_read(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    directory.chmod(mode)
    result = init(directory, tmp_path)
    assert result.returncode == 1
    assert f"directory {directory} is open to other users" in result.stderr
    assert list(directory.iterdir()) == [], "nothing is written into an exposed directory"


def test_refuses_an_existing_file_others_can_read(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    exposed = directory / "redis_password"
    exposed.write_text("was-world-readable\n")
    exposed.chmod(0o644)
    result = init(directory, tmp_path)
    assert result.returncode == 1
    assert f"file {exposed} is open to other users" in result.stderr
    assert "was-world-readable" not in result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_refuses_a_directory_another_user_owns(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)  # nobody
    result = init(directory, tmp_path)
    assert result.returncode == 1
    assert "belongs to another user" in result.stderr


def test_generated_files_pass_the_production_checks(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    assert init(directory, tmp_path).returncode == 0
    result = run_cli(
        "config",
        "check",
        env=base_env(**PRODUCTION, SECRETS_DIR=str(directory)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in FILES:
        assert f"SECRETS_DIR {directory / name}" in result.stdout
    for value in values(directory).values():
        assert value.strip() not in result.stdout + result.stderr
