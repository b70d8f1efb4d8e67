"""gcp-kms:// through google-auth's REST session (service-account credentials, OAuth token from
the fake) against the fake GCP's Cloud KMS `:encrypt` / `:decrypt`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.keys.kms import PURPOSE, parse_data_keys, parse_data_keys_blocking
from app.secrets.errors import SecretAccessDenied, SecretFetchError, SecretNotFound
from tests.keys.kms_helpers import check_ring, envelope, plain_keys
from tests.support.cloud.gcp import FakeSecretManager


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager()
    with fake.server.running():
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake.credentials_file(tmp_path)))
        monkeypatch.setenv("GCP_KMS_ENDPOINT", fake.server.url)
        yield fake


async def test_wraps_bound_to_their_purpose_survive_a_key_rotation_and_unwrap_once_each(
    gcp: FakeSecretManager,
) -> None:
    name = gcp.rotate_crypto_key("app", "data-keys")
    reference = f"gcp-kms://{name}"
    new, old = plain_keys()
    text = envelope(reference, new, old)
    encrypts = gcp.server.calls("POST", r":encrypt$")
    assert len(encrypts) == 2
    for request in encrypts:
        assert request.path == f"/v1/{name}:encrypt"
        assert (request.headers.get("Authorization") or "").startswith("Bearer ya29.")
        body = json.loads(request.body)
        assert base64.b64decode(body["additionalAuthenticatedData"]) == PURPOSE.encode()

    gcp.rotate_crypto_key("app", "data-keys")  # a new primary version
    ring = await parse_data_keys(text)
    check_ring(ring, new, old)
    assert len(gcp.server.calls("POST", r":decrypt$")) == 2

    # Without the purpose as AAD, KMS refuses the blob.
    wrapped = json.loads(text)["keys"][0]["wrapped_k"]
    blob = base64.urlsafe_b64decode(wrapped + "=" * (-len(wrapped) % 4))
    token = next(iter(gcp.issued_tokens))
    response = requests.post(
        f"{gcp.server.url}/v1/{name}:decrypt",
        json={"ciphertext": base64.b64encode(blob).decode()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 400


def test_denied_unknown_and_foreign_keys_are_refused_without_material(
    gcp: FakeSecretManager,
) -> None:
    name = gcp.rotate_crypto_key("app", "data-keys")
    other = gcp.rotate_crypto_key("app", "other")
    new, _ = plain_keys()
    text = envelope(f"gcp-kms://{name}", new)

    with pytest.raises(SecretFetchError, match="could not unwrap") as info:
        parse_data_keys_blocking(text.replace(name, other))
    assert new["k"] not in str(info.value)
    gcp.denied.add(name)
    with pytest.raises(SecretAccessDenied, match="cryptoKeyDecrypter"):
        parse_data_keys_blocking(text)
    with pytest.raises(SecretNotFound, match="no such crypto key"):
        envelope(f"gcp-kms://{name.replace('data-keys', 'missing')}", new)
    with pytest.raises(SecretFetchError, match="expected gcp-kms://projects/"):
        envelope("gcp-kms://projects/p/secrets/s", new)
