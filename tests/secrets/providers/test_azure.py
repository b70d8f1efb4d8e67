"""Azure Key Vault through the real SDK and DefaultAzureCredential (App Service managed identity)
against a fake Key Vault over TLS (a certificate generated for this run)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.keys_cmd import new_jwk
from app.config import SECRETS
from app.secrets import SecretStore
from tests.conftest import SettingsFactory
from tests.secrets.providers.conftest import (
    new_ring,
    open_error,
    provider_calls_while_serving,
    rotation_job_is_picked_up,
    signing_follows_rotation_over_http,
    wait_for,
)
from tests.support.app import client_for, resources, running_app
from tests.support.cloud.azure import VAULT, FakeKeyVault
from tests.support.server import free_port

REF = f"azure-kv://{VAULT}"


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKeyVault]:
    fake = FakeKeyVault()
    with fake.server.running(tls_dir=tmp_path), fake.identity.running():
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "fake-tls.crt"))
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity.url + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
        monkeypatch.setenv("AZURE_KEYVAULT_URL_TEMPLATE", fake.vault_url_template)
        yield fake


async def test_reads_concurrently_with_managed_identity_and_reports_the_version(
    azure: FakeKeyVault, make_settings: SettingsFactory
) -> None:
    old, jwt_value = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    first_version = azure.add("jwt-keys", old)
    latest = azure.add("jwt-keys", jwt_value)
    redis_value = secrets.token_urlsafe(24)
    azure.add("backend", f'{{"redis_password": "{redis_value}"}}')
    azure.server.latency = 1.0  # wide enough that a loaded machine still overlaps them
    store = await SecretStore.open(
        make_settings(
            jwt_keys=f"{REF}/jwt-keys",
            redis_password=f"{REF}/backend#redis_password",
            database_password=f"{REF}/jwt-keys/{first_version}",
        ),
        SECRETS,
    )
    await store.aclose()

    assert store.get("JWT_KEYS").get_secret_value() == jwt_value  # type: ignore[union-attr]
    assert store.get("DATABASE_PASSWORD").get_secret_value() == old  # type: ignore[union-attr]
    assert store.get("REDIS_PASSWORD").get_secret_value() == redis_value  # type: ignore[union-attr]
    entry = store.entry("JWT_KEYS")
    assert entry is not None
    assert (entry.source, entry.version) == ("azure-kv", latest)
    answered = [
        r
        for r in azure.server.calls("GET", r"/secrets/")
        if (r.headers.get("Authorization") or "").startswith("Bearer ")
    ]
    assert len(answered) == 3, "each secret read once with a token (after the 401 challenge)"
    assert azure.server.max_in_flight(answered) >= 2, "startup fetches must run concurrently"
    assert all(r.path.startswith(f"/{VAULT}/secrets/") for r in answered)
    token_requests = azure.identity.calls("GET", "/msi/token")
    assert token_requests
    assert all(r.headers.get("X-IDENTITY-HEADER") == azure.identity_header for r in token_requests)
    for request in azure.server.requests:
        assert not any(v in request.path for v in (old, jwt_value, redis_value))


async def test_failures_are_distinct_and_tls_is_verified(
    azure: FakeKeyVault, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = secrets.token_urlsafe(48)
    azure.add("locked", hidden)
    azure.denied.add("locked")
    denied = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert f"JWT_KEYS (from JWT_KEYS={REF}/locked): access denied" in denied
    assert "Key Vault Secrets User" in denied

    missing = await open_error(make_settings(jwt_keys=f"{REF}/absent"))
    assert f"JWT_KEYS (from JWT_KEYS={REF}/absent): not found" in missing

    malformed = await open_error(make_settings(jwt_keys="azure-kv://only-a-vault"))
    assert "expected azure-kv://<vault-name>/<secret-name>" in malformed

    monkeypatch.setenv("AZURE_KEYVAULT_URL_TEMPLATE", f"https://127.0.0.1:{free_port()}")
    unreachable = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert "unreachable: cannot reach Azure Key Vault" in unreachable

    monkeypatch.setenv("AZURE_KEYVAULT_URL_TEMPLATE", azure.vault_url_template)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # an untrusted certificate is never accepted
    untrusted = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert "JWT_KEYS" in untrusted
    assert "cannot reach Azure Key Vault" in untrusted
    for message in (denied, missing, malformed, unreachable, untrusted):
        assert hidden not in message


async def test_a_new_version_is_served_without_restart_and_requests_make_no_calls(
    azure: FakeKeyVault, make_settings: SettingsFactory
) -> None:
    first, second = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    azure.add("jwt-keys", first)
    settings = make_settings(jwt_keys=f"{REF}/jwt-keys", secrets_refresh_seconds=30)
    async with running_app(settings) as app:
        store: SecretStore = resources(app).store
        async with client_for(app) as client:
            calls = await provider_calls_while_serving(client, azure.server.requests)
            assert calls == 0, "no provider call on the request path"
        latest = azure.add("jwt-keys", second)
        assert await store.refresh() == {"JWT_KEYS"}
        await wait_for(lambda: store.get("JWT_KEYS").get_secret_value() == second)  # type: ignore[union-attr]
        assert store.entry("JWT_KEYS").version == latest  # type: ignore[union-attr]


async def test_rotation_job_sets_a_new_version(
    azure: FakeKeyVault, make_settings: SettingsFactory
) -> None:
    azure.add("jwt-ring", new_ring("HS256"))
    version = await rotation_job_is_picked_up(make_settings, f"{REF}/jwt-ring")
    assert version == azure.secrets_["jwt-ring"][-1][0]


async def test_a_new_version_reaches_jwt_signing_within_the_refresh_interval(
    azure: FakeKeyVault, make_settings: SettingsFactory
) -> None:
    first = new_jwk("HS256")
    azure.add("jwt-keys", json.dumps({"keys": [first]}))
    settings = make_settings(jwt_keys=f"{REF}/jwt-keys", secrets_refresh_seconds=1)
    async with running_app(settings) as app:

        async def set_version() -> str:
            second = new_jwk("HS256")
            azure.add("jwt-keys", json.dumps({"keys": [second, first]}))
            return str(second["kid"])

        await signing_follows_rotation_over_http(app, set_version)
