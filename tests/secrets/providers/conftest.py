"""Shared helpers for provider tests: a clean cloud environment and store helpers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.config import SECRETS, Settings
from app.secrets import ConfigError, SecretStore

# google-auth reads these at import: never probe a real metadata server from a test.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"

#: Variables that would make an SDK reach a real cloud (or a developer's account) from a test.
CLOUD_PREFIXES = (
    "AWS_",
    "GOOGLE_",
    "GCP_",
    "GCLOUD_",
    "CLOUDSDK_",
    "AZURE_",
    "IDENTITY_",
    "IMDS_",
    "MSI_",
    "VAULT_",
)


@pytest.fixture(autouse=True)
def clean_cloud_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for name in list(os.environ):
        if name.startswith(CLOUD_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")  # no ~/.aws, ~/.azure, ~/.vault-token, gcloud ADC
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


async def open_error(settings: Settings) -> str:
    """Open a store that must fail; return its message."""
    try:
        store = await SecretStore.open(settings, SECRETS)
    except ConfigError as exc:
        return str(exc)
    await store.aclose()
    raise AssertionError("the store opened, but a ConfigError was expected")


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def provider_calls_while_serving(client: Any, recorded: list[Any]) -> int:
    """Serve 20 liveness and a readiness request; return how many calls the fake provider
    recorded meanwhile (`recorded` is its live request list): requests read the store only."""
    before = len(recorded)
    for _ in range(20):
        assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    return len(recorded) - before


def new_ring(*algs: str) -> str:
    """A JWK Set with fresh keys (newest first), generated for this test."""
    import json

    from app.cli.keys_cmd import new_jwk

    return json.dumps({"keys": [new_jwk(alg) for alg in algs]})


def signing_kid(store: SecretStore) -> str | None:
    from app.keys.signing import KeyRing

    value = store.get("JWT_KEYS")
    assert value is not None
    key = KeyRing.parse(value.get_secret_value()).signing_key()
    return key.kid if key is not None else None


async def rotate_ring(settings: Settings, reference: str) -> tuple[str, str | None]:
    """What `keys rotate --ref` does, in process: returns (new kid, new version)."""
    import json

    from app.cli.keys_cmd import new_jwk
    from app.cli.keys_ref import ring_documents
    from app.secrets.writers import update_secret

    added = new_jwk("HS256")

    def add_key(current: str | None) -> str:
        return json.dumps({"keys": [added, *ring_documents(current)]})

    written = await update_secret(settings, reference, add_key)
    return added["kid"], written.version


async def rotation_job_is_picked_up(
    make_settings: Callable[..., Settings], reference: str
) -> str | None:
    """While a service holds `reference` open, the rotation job adds a key: after one refresh
    the service signs with it and reports the version the job wrote (returned)."""
    service = await SecretStore.open(make_settings(jwt_keys=reference), SECRETS)
    try:
        new_kid, version = await rotate_ring(make_settings(), reference)
        assert await service.refresh() == {"JWT_KEYS"}
        assert signing_kid(service) == new_kid
        entry = service.entry("JWT_KEYS")
        assert entry is not None
        assert entry.version == version
    finally:
        await service.aclose()
    return version


async def signing_follows_rotation_over_http(
    app: Any, rotate: Callable[[], Awaitable[str]], timeout: float = 10.0
) -> None:
    """With requests running throughout, `rotate()` changes the ring in the backend and returns
    the new kid: new logins get tokens signed by it within `timeout`, and no request fails
    (tokens from the previous key stay valid)."""
    import jwt as pyjwt

    from tests.api.auth_helpers import bearer, login, signed_in
    from tests.support.app import client_for

    async with client_for(app) as client:
        email, tokens = await signed_in(client)
        old_kid = pyjwt.get_unverified_header(tokens["access_token"])["kid"]
        statuses: list[int] = []
        stop = asyncio.Event()

        async def keep_calling() -> None:
            while not stop.is_set():
                response = await client.get(
                    "/api/v1/users/me", headers=bearer(tokens["access_token"])
                )
                statuses.append(response.status_code)
                await asyncio.sleep(0.02)

        async def kid_of_a_new_login() -> str:
            response = await login(client, email)
            assert response.status_code == 200, response.text
            return str(pyjwt.get_unverified_header(response.json()["access_token"])["kid"])

        caller = asyncio.create_task(keep_calling())
        try:
            new_kid = await rotate()
            assert new_kid != old_kid
            deadline = time.monotonic() + timeout
            while await kid_of_a_new_login() != new_kid:
                assert time.monotonic() < deadline, "the new key did not start signing in time"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await caller
        assert statuses
        assert set(statuses) == {200}, "no request may fail during the rotation"
