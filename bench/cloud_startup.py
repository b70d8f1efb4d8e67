"""Bench target 5: start-up with 10 cloud secrets, 200 ms injected latency each.

Resolution must be concurrent: total time <= 1.5 x one fetch. Each provider runs through its real
SDK against the local fakes in `tests/support/cloud/` (latency injected server-side), measuring
exactly what `SecretStore` does at startup (`asyncio.gather` of every binding's fetch), plus a
real `SecretStore.open` with every secret setting from the provider.

Run: `python -m bench.cloud_startup` (prints one line per provider: name, ratio, target, PASS/FAIL).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.config import SECRETS as DECLARED
from app.config import Settings
from app.secrets import SecretStore
from app.secrets.references import load_provider, parse_reference

LATENCY = 0.2
SECRETS = 10
TARGET = 1.5
RUNS = 3


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _settings(**secret_refs: str) -> Settings:
    return Settings(
        _env_file=None,
        app_env="test",
        secrets_dir="/nonexistent",  # type: ignore[call-arg]
        **secret_refs,
    )


async def _measure(refs: list[str], store_refs: dict[str, str]) -> tuple[float, float, float]:
    settings = _settings()
    provider = load_provider(refs[0].split("://")[0], settings)
    parsed = [parse_reference(r) for r in refs]
    try:
        await provider.fetch(parsed[0])  # warm up: client construction, login, TLS
        started = time.perf_counter()
        await provider.fetch(parsed[1])
        one = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(provider.fetch(r) for r in parsed if r is not None))
        many = time.perf_counter() - started
    finally:
        await provider.aclose()
    started = time.perf_counter()
    store = await SecretStore.open(_settings(**store_refs), DECLARED)
    opened = time.perf_counter() - started
    await store.aclose()
    return one, many, opened


def main() -> int:
    from tests.support.cloud.azure import VAULT, FakeKeyVault
    from tests.support.cloud.gcp import PROJECT, FakeSecretManager
    from tests.support.cloud.vault import FakeVault

    os.environ.update(
        {
            "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    results: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        values = [secrets.token_urlsafe(48) for _ in range(SECRETS)]

        vault = FakeVault()
        for i, value in enumerate(values):
            vault.put(f"secret/s{i}", {"value": value})
        gcp = FakeSecretManager()
        for i, value in enumerate(values):
            gcp.add(f"s{i}", value)
        azure = FakeKeyVault()
        for i, value in enumerate(values):
            azure.add(f"s{i}", json.dumps({"value": value}))

        with (
            vault.server.running(),
            gcp.server.running(),
            azure.server.running(tls_dir=tmp),
            azure.identity.running(),
        ):
            cases = [
                (
                    "vault",
                    {"VAULT_ADDR": vault.server.url, "VAULT_TOKEN": vault.new_token()},
                    [f"vault://secret/s{i}#value" for i in range(SECRETS)],
                    vault.server,
                ),
                (
                    "gcp-sm",
                    {
                        "GOOGLE_APPLICATION_CREDENTIALS": str(gcp.credentials_file(tmp)),
                        "GCP_SECRET_MANAGER_ENDPOINT": gcp.server.url,
                    },
                    [f"gcp-sm://projects/{PROJECT}/secrets/s{i}" for i in range(SECRETS)],
                    gcp.server,
                ),
                (
                    "azure-kv",
                    {
                        "REQUESTS_CA_BUNDLE": str(tmp / "fake-tls.crt"),
                        "IDENTITY_ENDPOINT": azure.identity.url + "/msi/token",
                        "IDENTITY_HEADER": azure.identity_header,
                        "AZURE_KEYVAULT_URL_TEMPLATE": azure.vault_url_template,
                    },
                    [f"azure-kv://{VAULT}/s{i}#value" for i in range(SECRETS)],
                    azure.server,
                ),
            ]
            for name, env, refs, server in cases:
                with _env(**env):
                    server.latency = LATENCY
                    store_refs = {
                        "jwt_keys": refs[0],
                        "database_password": refs[1],
                        "redis_password": refs[2],
                    }
                    runs = [asyncio.run(_measure(refs, store_refs)) for _ in range(RUNS)]
                    server.latency = 0
                one = statistics.median(r[0] for r in runs)
                many = statistics.median(r[1] for r in runs)
                opened = statistics.median(r[2] for r in runs)
                results.append((name, one, many, opened))
    failed = False
    for name, one, many, opened in results:
        ratio = many / one
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        failed |= verdict == "FAIL"
        print(
            f"5. startup, {SECRETS} {name} secrets x {LATENCY * 1000:.0f} ms: "
            f"{ratio:.2f} (one fetch {one * 1000:.0f} ms, all {many * 1000:.0f} ms, "
            f"SecretStore.open with 3 settings {opened * 1000:.0f} ms)  target <= {TARGET}  "
            f"{verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
