"""Run the real server (`python -m app serve`) as a process and talk to it over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.config import SECRETS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: What a production process needs beyond its secrets: its own token issuer and audience (the
#: template's default `app` is refused in production).
PRODUCTION = {
    "APP_ENV": "production",
    "JWT_ISSUER": "https://auth.example.test",
    "JWT_AUDIENCE": "https://api.example.test",
}


def base_env(**overrides: str) -> dict[str, str]:
    """A clean environment: no developer `.env`, no /run/secrets, no declared secret (nor its
    `_FILE`) inherited from the shell, only what the test says."""
    declared = SECRETS.variables()
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in declared
        and not k.startswith(("DATABASE_", "REDIS_", "JWT_", "APP_", "SECRETS_", "SMTP_", "MAIL_"))
        and k != "PUBLIC_BASE_URL"
    }
    env.update({"APP_ENV": "test", "PYTHONUNBUFFERED": "1", "SECRETS_DIR": "/nonexistent"})
    env.update(overrides)
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    timeout: float = 60,
    cwd: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m app *args`; `input` is piped to its standard input (else it gets none)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=dict(env),
        cwd=cwd or ROOT,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServerProcess:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    env: Mapping[str, str], tmp_path: Path, *, wait: bool = True, timeout: float = 30
) -> Iterator[ServerProcess]:
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    log = tmp_path / f"server-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        if wait:
            wait_until_answering(process, f"{server.url}/health/live", log, timeout=timeout)
        yield server
    finally:
        stop(process, timeout=15)


def wait_until_answering(
    process: subprocess.Popen[Any],
    url: str,
    log: Path,
    *,
    timeout: float = 30,
    status: int | None = 200,
) -> None:
    """Poll `url` until it answers (with `status`, or anything when None); fail with the
    process's log if it exits or the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            code, output = process.returncode, log.read_text(errors="replace")
            raise RuntimeError(f"the process for {url} exited with {code}:\n{output}")
        try:
            answer = httpx.get(url, timeout=1)
            if status is None or answer.status_code == status:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            output = log.read_text(errors="replace")
            raise RuntimeError(f"{url} did not answer within {timeout}s:\n{output}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Terminate, and kill if it does not exit within `timeout` (no-op if it already exited)."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
