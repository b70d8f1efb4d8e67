"""vault-transit:// through the real hvac client (the Vault provider's login) against the fake
Vault's transit endpoints."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator

import pytest

from app.keys.kms import parse_data_keys, parse_data_keys_blocking
from app.secrets.errors import SecretAccessDenied, SecretFetchError
from tests.keys.kms_helpers import check_ring, envelope, plain_keys
from tests.support.cloud.vault import FakeVault

REFERENCE = "vault-transit://transit/app-data"


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVault]:
    fake = FakeVault()
    with fake.server.running():
        monkeypatch.setenv("VAULT_ADDR", fake.server.url)
        fake.rotate_transit_key("transit", "app-data")
        yield fake


async def test_wraps_survive_a_transit_key_rotation_and_unwrap_once_each_with_approle(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.approle = (secrets.token_hex(8), secrets.token_hex(16))
    monkeypatch.setenv("VAULT_ROLE_ID", vault.approle[0])
    monkeypatch.setenv("VAULT_SECRET_ID", vault.approle[1])
    new, old = plain_keys()
    text = envelope(REFERENCE, new, old)
    for document in json.loads(text)["keys"]:
        assert base64.urlsafe_b64decode(document["wrapped_k"] + "==").startswith(b"vault:v1:")

    assert vault.rotate_transit_key("transit", "app-data") == 2
    logins_before = len(vault.server.calls("POST", r"/v1/auth/approle/login"))
    ring = await parse_data_keys(text)
    check_ring(ring, new, old)
    assert len(vault.server.calls(None, r"^/v1/transit/decrypt/app-data$")) == 2
    assert len(vault.server.calls("POST", r"/v1/auth/approle/login")) == logins_before + 1


def test_a_policy_without_decrypt_is_denied_and_other_keys_refuse_the_wrap(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    new, _ = plain_keys()
    text = envelope(REFERENCE, new)

    vault.denied_paths.add("transit/decrypt/app-data")
    with pytest.raises(SecretAccessDenied, match="Vault refused the transit request") as info:
        parse_data_keys_blocking(text)
    assert new["k"] not in str(info.value)
    vault.denied_paths.clear()

    vault.rotate_transit_key("transit", "other")
    with pytest.raises(SecretFetchError, match="InvalidRequest") as info:
        parse_data_keys_blocking(text.replace(REFERENCE, "vault-transit://transit/other"))
    assert "vault:v1" not in str(info.value)
    with pytest.raises(SecretFetchError, match="InvalidRequest"):
        envelope("vault-transit://transit/missing", new)
    with pytest.raises(SecretFetchError, match="expected vault-transit://"):
        envelope("vault-transit://no-key", new)
