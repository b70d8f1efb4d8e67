"""azure-kv-key:// through the real azure-keyvault-keys CryptographyClient and
DefaultAzureCredential (managed identity) against the fake Key Vault over TLS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.keys.kms import parse_data_keys, parse_data_keys_blocking
from app.secrets.errors import SecretAccessDenied, SecretFetchError, SecretNotFound
from tests.keys.kms_helpers import check_ring, envelope, plain_keys
from tests.support.cloud.azure import VAULT, FakeKeyVault


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKeyVault]:
    fake = FakeKeyVault()
    with fake.server.running(tls_dir=tmp_path), fake.identity.running():
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "fake-tls.crt"))
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity.url + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
        monkeypatch.setenv("AZURE_KEYVAULT_URL_TEMPLATE", fake.key_vault_url_template)
        yield fake


def _wrapped(text: str) -> list[bytes]:
    return [
        base64.urlsafe_b64decode(k["wrapped_k"] + "=" * (-len(k["wrapped_k"]) % 4))
        for k in json.loads(text)["keys"]
    ]


async def test_wraps_name_their_key_version_and_still_unwrap_after_the_key_rotates(
    azure: FakeKeyVault,
) -> None:
    first = azure.add_key("data-keys")
    reference = f"azure-kv-key://{VAULT}/data-keys"
    new, old = plain_keys()
    text = envelope(reference, new, old)
    # With keys/get the SDK wraps locally with the public key: no wrapkey request.
    assert azure.server.calls("POST", r"/wrapkey\?") == []
    for blob in _wrapped(text):
        assert blob.startswith(first.encode() + b".")

    azure.add_key("data-keys")  # a new current version
    ring = await parse_data_keys(text)
    check_ring(ring, new, old)
    unwraps = azure.server.calls("POST", r"/unwrapkey\?")
    answered = [r for r in unwraps if (r.headers.get("Authorization") or "").startswith("Bearer")]
    assert [r.path.split("?")[0] for r in answered] == [
        f"/keys/data-keys/{first}/unwrapkey",
        f"/keys/data-keys/{first}/unwrapkey",
    ]


def test_without_keys_get_a_pinned_version_wraps_remotely_and_a_versionless_one_refuses(
    azure: FakeKeyVault,
) -> None:
    version = azure.add_key("data-keys")
    azure.keys_get_denied.add("data-keys")
    new, old = plain_keys()
    pinned = f"azure-kv-key://{VAULT}/data-keys/{version}"
    text = envelope(pinned, new, old)
    assert len(azure.server.calls("POST", rf"/keys/data-keys/{version}/wrapkey\?")) >= 2
    check_ring(parse_data_keys_blocking(text), new, old)

    with pytest.raises(SecretFetchError, match="pin it in the reference"):
        envelope(f"azure-kv-key://{VAULT}/data-keys", new)


def test_denied_unknown_and_foreign_keys_are_refused_without_material(
    azure: FakeKeyVault,
) -> None:
    azure.add_key("data-keys")
    azure.add_key("other")
    new, _ = plain_keys()
    text = envelope(f"azure-kv-key://{VAULT}/data-keys", new)
    foreign = json.loads(text)
    blob = _wrapped(text)[0]
    other_version = azure.keys_["other"][-1][0]
    relabelled = other_version.encode() + blob[blob.index(b".") :]
    foreign["keys"][0]["wrapped_k"] = base64.urlsafe_b64encode(relabelled).decode().rstrip("=")
    foreign["kms"] = f"azure-kv-key://{VAULT}/other"
    with pytest.raises(SecretFetchError, match="could not unwrap") as info:
        parse_data_keys_blocking(json.dumps(foreign))
    assert new["k"] not in str(info.value)

    azure.denied.add("data-keys")
    with pytest.raises(SecretAccessDenied, match="Crypto Service Encryption User"):
        parse_data_keys_blocking(text)
    with pytest.raises(SecretNotFound, match="no such key"):
        envelope(f"azure-kv-key://{VAULT}/missing", new)
    with pytest.raises(SecretFetchError, match="expected azure-kv-key://"):
        envelope("azure-kv-key://v/", new)
