"""What the benchmarks run against: a throwaway database on the local PostgreSQL (migrated),
a private key prefix on the local Redis, the bench server process, and a signed-in user."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis import Redis

from tests.support.server import ROOT, base_env, free_port, stop, wait_until_answering
from tests.support.services import TEST_REDIS_URL, create_database, drop_database


@dataclass(frozen=True)
class BenchServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    bearer: str


@contextmanager
def bench_environment() -> Iterator[dict[str, str]]:
    """Environment for the app on a fresh, migrated database and a private Redis prefix."""
    database_url = asyncio.run(create_database("bench"))
    prefix = f"bench:{secrets.token_hex(5)}:"
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        JWT_KEYS=secrets.token_urlsafe(48),
        ACCESS_TOKEN_TTL_SECONDS="3600",
        # Far more logins than a person makes, all successful, all from 127.0.0.1: the abuse
        # limits (per account and per client address) would refuse a storm, by design.
        LOGIN_MAX_FAILURES="1000000",
        RATE_LIMIT_LOGIN="1000000/minute",
        RATE_LIMIT_REGISTER="1000000/hour",
    )
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "app", "migrate"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"migration failed:\n{migrated.stderr}")
        yield env
    finally:
        asyncio.run(drop_database(database_url))
        client = Redis.from_url(TEST_REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@contextmanager
def bench_server(
    env: dict[str, str],
    log_dir: Path,
    *,
    module: str = "bench.server",
    args: tuple[str, ...] = (),
    ready: str = "/health/ready",
    **overrides: str,
) -> Iterator[BenchServer]:
    """Serve `python -m <module>` with `env` plus `overrides`. Its output (the access log at the
    default level) goes to a file, as a container runtime would collect it."""
    port = free_port()
    env = {**env, **overrides, "HOST": "127.0.0.1", "PORT": str(port)}
    log_path = log_dir / f"{module}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = BenchServer(f"http://127.0.0.1:{port}", env, process)
    try:
        wait_until_answering(process, f"{server.url}{ready}", log_path, timeout=60)
        yield server
    finally:
        stop(process, timeout=30)
        log.close()


@contextmanager
def bare_server(env: dict[str, str], log_dir: Path) -> Iterator[BenchServer]:
    """The reference: `bench.bare`, a FastAPI app with one `{"ok": true}` endpoint."""
    from bench.bare import PATH

    with bench_server(env, log_dir, module="bench.bare", ready=PATH) as server:
        yield server


def signed_in_account(server: BenchServer) -> Account:
    email, password = f"bench-{secrets.token_hex(5)}@example.com", secrets.token_urlsafe(16)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        registered.raise_for_status()
        login = client.post("/api/v1/auth/login", data={"username": email, "password": password})
        login.raise_for_status()
        bearer = f"Bearer {login.json()['access_token']}"
        assert client.get("/api/v1/users/me", headers={"Authorization": bearer}).is_success
    return Account(email, password, bearer)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
