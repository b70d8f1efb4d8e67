"""docker/redis-start.sh against a real redis-server: ACL users from the secret FILE, the
password in no argv, environment or ACL line, only PING for unauthenticated clients."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.deploy.tools import ROOT

SCRIPT = ROOT / "docker" / "redis-start.sh"
PASSWORD = "s3cr3t-redis-pw-from-file"  # pragma: allowlist secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is required (the machine's Redis package provides it)")
    # Stand-in for the official image's entrypoint, which execs its arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    entrypoint = bin_dir / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\nexec "$@"\n')
    entrypoint.chmod(0o755)
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    port = _free_port()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REDIS_PASSWORD_FILE": str(secret),
        "REDIS_USERNAME": "app",
        "REDIS_ACL_KEYS": "app:*",
        "REDIS_ACL_DIR": str(tmp_path / "acl"),
    }
    process = subprocess.Popen(
        ["sh", str(SCRIPT), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
    try:
        yield process, port, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_app_user_authenticates_with_the_file_password_on_its_keys_only(
    started: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    _, port, _ = started
    client = redis.Redis(host="127.0.0.1", port=port, username="app", password=PASSWORD)
    try:
        assert client.set("app:probe", "1")
        assert client.get("app:probe") == b"1"
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other:probe", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
    finally:
        client.close()
    wrong = redis.Redis(host="127.0.0.1", port=port, username="app", password="wrong")
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_unauthenticated_clients_may_only_ping(
    started: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    _, port, _ = started
    anonymous = redis.Redis(host="127.0.0.1", port=port)
    try:
        assert anonymous.ping() is True  # what the compose/k8s health checks run
        with pytest.raises(redis.exceptions.NoPermissionError):
            anonymous.get("app:probe")
    finally:
        anonymous.close()


def test_the_password_is_in_no_argv_environment_or_acl_file(
    started: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, _, tmp_path = started
    proc = Path(f"/proc/{process.pid}")
    assert PASSWORD.encode() not in (proc / "cmdline").read_bytes()
    assert PASSWORD.encode() not in (proc / "environ").read_bytes()
    acl = (tmp_path / "acl" / "users.acl").read_text()
    assert PASSWORD not in acl
    assert "#" + hashlib.sha256(PASSWORD.encode()).hexdigest() in acl
    assert oct((tmp_path / "acl" / "users.acl").stat().st_mode & 0o777) == "0o600"


def test_a_missing_secret_file_fails_naming_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], "REDIS_PASSWORD_FILE": str(tmp_path / "absent")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "REDIS_PASSWORD_FILE" in result.stderr
