"""Shared helpers for provider tests: a clean cloud environment and store helpers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from app.config import Settings
from app.secrets import ConfigError, SecretStore

# google-auth reads these at import: never probe a real metadata server from a test.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"

#: Variables that would make an SDK reach a real cloud (or a developer's account) from a test.
CLOUD_PREFIXES = ("AWS_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "AZURE_", "IDENTITY_",
                  "IMDS_", "MSI_", "VAULT_")


@pytest.fixture(autouse=True)
def clean_cloud_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
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
        store = await SecretStore.open(settings)
    except ConfigError as exc:
        return str(exc)
    await store.aclose()
    raise AssertionError("the store opened, but a ConfigError was expected")


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
