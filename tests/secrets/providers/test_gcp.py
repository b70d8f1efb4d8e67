"""GCP Secret Manager through the real client (REST transport, service-account credentials)
against a fake of the two documented REST calls used."""

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
    rotation_job_is_picked_up,
    signing_follows_rotation_over_http,
)
from tests.support.app import resources, running_app
from tests.support.cloud.gcp import PROJECT, FakeSecretManager
from tests.support.server import free_port

REF = f"gcp-sm://projects/{PROJECT}/secrets"


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager()
    with fake.server.running():
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake.credentials_file(tmp_path)))
        monkeypatch.setenv("GCP_SECRET_MANAGER_ENDPOINT", fake.server.url)
        yield fake


async def test_reads_latest_or_pinned_versions_concurrently_and_reports_the_version(
    gcp: FakeSecretManager, make_settings: SettingsFactory
) -> None:
    old, jwt_value = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    gcp.add("jwt-keys", old)
    gcp.add("jwt-keys", jwt_value)
    redis_value = secrets.token_urlsafe(24)
    gcp.add("backend", f'{{"redis_password": "{redis_value}"}}')
    gcp.server.latency = 1.0  # wide enough that a loaded machine still overlaps them
    store = await SecretStore.open(
        make_settings(
            jwt_keys=f"{REF}/jwt-keys",
            redis_password=f"{REF}/backend#redis_password",
            database_password=f"{REF}/jwt-keys/versions/1",
        ),
        SECRETS,
    )
    await store.aclose()

    assert store.get("JWT_KEYS").get_secret_value() == jwt_value  # type: ignore[union-attr]
    assert store.get("DATABASE_PASSWORD").get_secret_value() == old  # type: ignore[union-attr]
    assert store.get("REDIS_PASSWORD").get_secret_value() == redis_value  # type: ignore[union-attr]
    entry = store.entry("JWT_KEYS")
    assert entry is not None
    assert (entry.source, entry.version) == ("gcp-sm", "2")
    accesses = gcp.server.calls("GET", r":access")
    assert len(accesses) == 3
    assert gcp.server.max_in_flight(accesses) == 3, "startup fetches must run concurrently"
    assert all(gcp._authorized(r) for r in accesses), "every call carries a valid credential"
    for request in gcp.server.requests:
        assert not any(v in request.path for v in (old, jwt_value, redis_value))


async def test_permission_denied_is_not_reported_as_missing(
    gcp: FakeSecretManager, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = secrets.token_urlsafe(48)
    gcp.add("locked", hidden)
    gcp.denied.add(f"projects/{PROJECT}/secrets/locked")
    denied = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert f"JWT_KEYS (from JWT_KEYS={REF}/locked): access denied" in denied
    assert "secretAccessor" in denied

    missing = await open_error(make_settings(jwt_keys=f"{REF}/absent"))
    assert f"JWT_KEYS (from JWT_KEYS={REF}/absent): not found" in missing

    malformed = await open_error(make_settings(jwt_keys="gcp-sm://my-secret"))
    assert "expected gcp-sm://projects/<project>/secrets/<name>" in malformed

    gcp.server.latency = 2.0
    slow = await open_error(
        make_settings(jwt_keys=f"{REF}/locked", secrets_fetch_timeout_seconds=0.5)
    )
    assert "timed out after 0.5s" in slow
    gcp.server.latency = 0

    monkeypatch.setenv("GCP_SECRET_MANAGER_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    unreachable = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert "unreachable: cannot reach GCP Secret Manager" in unreachable

    monkeypatch.setenv("GCP_SECRET_MANAGER_ENDPOINT", gcp.server.url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    anonymous = await open_error(make_settings(jwt_keys=f"{REF}/locked"))
    assert "access denied: no Google credentials found" in anonymous
    for message in (denied, missing, malformed, slow, unreachable, anonymous):
        assert hidden not in message


async def test_a_new_version_reaches_jwt_signing_without_restart(
    gcp: FakeSecretManager, make_settings: SettingsFactory
) -> None:
    first = new_jwk("HS256")
    gcp.add("jwt-keys", json.dumps({"keys": [first]}))
    settings = make_settings(jwt_keys=f"{REF}/jwt-keys", secrets_refresh_seconds=1)
    async with running_app(settings) as app:

        async def add_version() -> str:
            second = new_jwk("HS256")
            gcp.add("jwt-keys", json.dumps({"keys": [second, first]}))
            return str(second["kid"])

        await signing_follows_rotation_over_http(app, add_version)
        assert resources(app).store.entry("JWT_KEYS").version == "2"


async def test_rotation_job_adds_a_version(
    gcp: FakeSecretManager, make_settings: SettingsFactory
) -> None:
    gcp.add("jwt-ring", new_ring("HS256"))
    assert await rotation_job_is_picked_up(make_settings, f"{REF}/jwt-ring") == "2"
    assert gcp.server.calls("POST", r":addVersion(\?|$)")
