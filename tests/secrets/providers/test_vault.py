"""Vault provider through the real hvac client against a fake Vault speaking the documented API."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.config import SECRETS
from app.secrets import SecretStore
from app.secrets.errors import SecretFetchError
from tests.conftest import SettingsFactory
from tests.secrets.providers.conftest import (
    new_ring,
    open_error,
    provider_calls_while_serving,
    rotate_ring,
    rotation_job_is_picked_up,
    wait_for,
)
from tests.support.app import client_for, resources, running_app
from tests.support.cloud.http import Recorded, Reply
from tests.support.cloud.vault import FakeVault
from tests.support.private_services import private_postgres
from tests.support.server import free_port


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVault]:
    fake = FakeVault()
    with fake.server.running():
        monkeypatch.setenv("VAULT_ADDR", fake.server.url)
        yield fake


@pytest.fixture
def approle(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.approle = (secrets.token_hex(8), secrets.token_hex(16))
    monkeypatch.setenv("VAULT_ROLE_ID", vault.approle[0])
    monkeypatch.setenv("VAULT_SECRET_ID", vault.approle[1])


def _values() -> dict[str, str]:
    return {
        "jwt_keys": secrets.token_urlsafe(48),
        "db_password": secrets.token_urlsafe(24),
        "other": secrets.token_urlsafe(24),
    }


@pytest.mark.usefixtures("approle")
async def test_kv_v2_reads_concurrently_with_approle_and_reports_the_version(
    vault: FakeVault, make_settings: SettingsFactory
) -> None:
    values = _values()
    vault.put("secret/backend", {"old": "x"})
    vault.put("secret/backend", values)  # version 2
    vault.put("secret/db", {"password": values["db_password"]})
    vault.server.latency = 1.0  # wide enough that a loaded machine still overlaps them
    settings = make_settings(
        jwt_keys="vault://secret/backend#jwt_keys", database_password="vault://secret/db#password"
    )
    store = await SecretStore.open(settings, SECRETS)
    await store.aclose()

    assert store.get("JWT_KEYS").get_secret_value() == values["jwt_keys"]  # type: ignore[union-attr]
    jwt_entry = store.entry("JWT_KEYS")
    assert jwt_entry is not None
    assert (jwt_entry.source, jwt_entry.version) == ("vault", "2")
    assert jwt_entry.origin == "JWT_KEYS=vault://secret/backend#jwt_keys"
    reads = vault.server.calls("GET", r"^/v1/secret/data/")
    assert len(reads) == 2
    assert vault.server.max_in_flight(reads) == 2, "startup fetches must run concurrently"
    assert all(r.headers.get("X-Vault-Token") in vault.tokens for r in reads)
    assert len(vault.server.calls("POST", r"^/v1/auth/approle/login$")) == 1
    for request in vault.server.requests:
        assert not any(v in request.path for v in values.values())


async def test_kubernetes_auth_and_relogin_after_the_token_is_revoked(
    vault: FakeVault,
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    jwt_file = tmp_path / "sa-token"
    jwt_file.write_text(secrets.token_urlsafe(32))
    vault.kubernetes = ("backend", jwt_file.read_text())
    monkeypatch.setenv("VAULT_KUBERNETES_ROLE", "backend")
    monkeypatch.setenv("VAULT_KUBERNETES_TOKEN_FILE", str(jwt_file))
    first, second = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    vault.put("kv/app", {"jwt": first})
    store = await SecretStore.open(make_settings(jwt_keys="vault://kv/app#jwt"), SECRETS)
    try:
        vault.tokens.clear()  # the login token is revoked: the next read gets a 403
        vault.put("kv/app", {"jwt": second})
        assert await store.refresh(["JWT_KEYS"]) == {"JWT_KEYS"}
        assert store.get("JWT_KEYS").get_secret_value() == second  # type: ignore[union-attr]
        assert len(vault.server.calls("POST", r"^/v1/auth/kubernetes/login$")) == 2
    finally:
        await store.aclose()


async def test_failures_are_distinct_and_name_the_setting_and_reference(
    vault: FakeVault, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = vault.new_token()
    monkeypatch.setenv("VAULT_TOKEN", token)
    hidden = secrets.token_urlsafe(48)
    vault.put("secret/denied", {"jwt": hidden})
    vault.denied_paths.add("secret/denied")

    missing = await open_error(make_settings(jwt_keys="vault://secret/nope#jwt"))
    assert "JWT_KEYS (from JWT_KEYS=vault://secret/nope#jwt)" in missing
    assert "not found" in missing

    denied = await open_error(make_settings(jwt_keys="vault://secret/denied#jwt"))
    assert "access denied" in denied
    assert "vault://secret/denied#jwt" in denied

    vault.put("secret/nokey", {"other": secrets.token_urlsafe(40)})
    no_key = await open_error(make_settings(jwt_keys="vault://secret/nokey#jwt"))
    assert "JSON key 'jwt' not present" in no_key

    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{free_port()}")
    unreachable = await open_error(make_settings(jwt_keys="vault://secret/denied#jwt"))
    assert "unreachable" in unreachable
    assert "JWT_KEYS" in unreachable

    vault.server.latency = 2.0
    monkeypatch.setenv("VAULT_ADDR", vault.server.url)
    timed_out = await open_error(
        make_settings(jwt_keys="vault://secret/denied#jwt", secrets_fetch_timeout_seconds=0.5)
    )
    assert "timed out after 0.5s" in timed_out
    for message in (missing, denied, no_key, unreachable, timed_out):
        assert hidden not in message
        assert token not in message

    monkeypatch.delenv("VAULT_TOKEN")
    no_auth = await open_error(make_settings(jwt_keys="vault://secret/denied#jwt"))
    assert "no Vault credentials" in no_auth


async def test_rotation_is_served_without_restart_and_outages_keep_the_last_value(
    vault: FakeVault,
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    first, second = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    vault.put("secret/backend", {"jwt_keys": first})
    settings = make_settings(jwt_keys="vault://secret/backend#jwt_keys", secrets_refresh_seconds=1)
    async with running_app(settings) as app:
        store: SecretStore = resources(app).store
        async with client_for(app) as client:
            calls = await provider_calls_while_serving(client, vault.server.requests)
            # Refreshes may happen meanwhile, but requests add none: at most the timed ones.
            assert calls <= 2

            vault.put("secret/backend", {"jwt_keys": second})
            await wait_for(lambda: store.get("JWT_KEYS").get_secret_value() == second)  # type: ignore[union-attr]
            assert store.entry("JWT_KEYS").version == "2"  # type: ignore[union-attr]

            caplog.set_level(logging.WARNING, logger="app.secrets")
            vault.server.down = True
            started = time.monotonic()
            await wait_for(lambda: len(_refresh_warnings(caplog)) >= 2, timeout=6)
            assert store.get("JWT_KEYS").get_secret_value() == second  # type: ignore[union-attr]
            assert (await client.get("/health/live")).status_code == 200
            elapsed = time.monotonic() - started
            # Once per interval (1 s, jitter down to 0.8 s), not once per poll or per request.
            assert len(_refresh_warnings(caplog)) <= elapsed / 0.8 + 1
            assert all(second not in r.getMessage() for r in caplog.records)
            vault.server.down = False


def _refresh_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "secret refresh failed for JWT_KEYS" in r.getMessage()]


@pytest.mark.slow
async def test_dynamic_database_credentials_are_one_lease_renewed_then_replaced(
    vault: FakeVault, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    with private_postgres() as pg:
        issued: list[str] = []

        def issue(role: str) -> dict[str, str]:
            # What Vault's database engine does: a fresh login role per lease.
            username = f"v_{role}_{secrets.token_hex(4)}"
            password = secrets.token_urlsafe(24)
            pg.psql(f"CREATE ROLE {username} LOGIN PASSWORD '{password}'")
            issued.append(username)
            return {"username": username, "password": password}

        vault.issue_credentials = issue
        vault.lease_ttl, vault.lease_max_ttl = 4, 8
        settings = make_settings(
            database_url=pg.url(user="nobody"),
            database_credentials="vault://database/creds/app",
            secrets_refresh_seconds=60,
        )
        async with running_app(settings) as app:
            engine = resources(app).engine
            assert engine.pool._recycle == 1  # a quarter of the 4 s lease
            entry = resources(app).store.entry("DATABASE_CREDENTIALS")
            assert entry.source == "vault"
            assert entry.ttl == 4
            assert entry.version.startswith("lease-")

            async def current_user() -> str:
                async with engine.connect() as connection:
                    return str(await connection.scalar(text("SELECT current_user")))

            assert await current_user() == issued[0]
            # Refreshed at half-life (not after SECRETS_REFRESH_SECONDS=60): renewed first...
            await wait_for(lambda: len(vault.server.calls("PUT", "^/v1/sys/leases/renew$")) >= 1)
            assert len(issued) == 1
            # ...then, when the max TTL stops the renewal, replaced by a new lease.
            await wait_for(lambda: len(issued) == 2, timeout=10)
            await wait_for(
                lambda: (
                    resources(app).store.get("DATABASE_CREDENTIALS") is not None
                    and issued[1]
                    in resources(app).store.get("DATABASE_CREDENTIALS").get_secret_value()
                )
            )
            await engine.dispose()  # new connections only
            assert await current_user() == issued[1]
        creds_reads = vault.server.calls("GET", "^/v1/database/creds/app$")
        assert len(creds_reads) == 2  # one read per lease: user and password from the same one
        for request in vault.server.requests:
            assert "password" not in request.path


async def test_rotation_job_writes_kv_with_check_and_set(
    vault: FakeVault, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    other = secrets.token_urlsafe(24)
    vault.put("secret/backend", {"jwt_keys": new_ring("HS256"), "other": other})
    reference = "vault://secret/backend#jwt_keys"
    assert await rotation_job_is_picked_up(make_settings, reference) == "2"
    write = vault.server.calls("POST", "^/v1/secret/data/backend$")[-1]
    assert json.loads(write.body)["options"] == {"cas": 1}
    assert vault.kv["secret/backend"][-1]["other"] == other

    # A concurrent writer between read and write: check-and-set refuses, nothing is lost.
    original = vault.server.routes[:]

    def racing(match: re.Match[str], record: Recorded) -> Reply:
        vault.put("secret/backend", dict(vault.kv["secret/backend"][-1]))
        return vault._write(match, record)

    pattern = re.compile(r"/v1/(?P<mount>secret)/data/(?P<path>backend)")
    vault.server.routes.insert(0, ("POST", pattern, racing))
    with pytest.raises(SecretFetchError, match="check-and-set"):
        await rotate_ring(make_settings(), "vault://secret/backend#jwt_keys")
    vault.server.routes[:] = original
