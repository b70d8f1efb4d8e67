"""aws-kms:// through real boto3 against a real moto server with IAM enforced: the rotation job
wraps with kms:Encrypt, the application unwraps with kms:Decrypt, nothing else."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from app.keys.kms import parse_data_keys, parse_data_keys_blocking
from app.secrets.errors import SecretAccessDenied, SecretFetchError, SecretNotFound
from tests.keys.kms_helpers import check_ring, envelope, plain_keys
from tests.support.cloud.moto import MotoServer, moto_server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-kms")) as server:
        yield server


def act_as(monkeypatch: pytest.MonkeyPatch, moto: MotoServer, keys: dict[str, str]) -> None:
    for name, value in moto.env(keys).items():
        monkeypatch.setenv(name, value)


def new_kms_key(moto: MotoServer) -> tuple[str, str]:
    """(key id, alias name) of a fresh symmetric KMS key."""
    client = moto.client("kms")
    key_id = client.create_key(Description="DATA_KEYS wrapping key")["KeyMetadata"]["KeyId"]
    alias = f"alias/app-data-{secrets.token_hex(4)}"
    client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id, alias


async def test_the_rotator_wraps_and_the_app_unwraps_once_at_parse(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, alias = new_kms_key(moto)
    reference = f"aws-kms://{alias}"
    new, old = plain_keys()
    act_as(monkeypatch, moto, moto.user_allowed("kms:Encrypt"))
    text = envelope(reference, new, old)

    # Least privilege: the rotation job's role cannot read the keys back.
    with pytest.raises(SecretAccessDenied, match=r"AWS KMS refused .*kms:Decrypt") as denied:
        parse_data_keys_blocking(text)
    assert new["k"] not in str(denied.value)

    act_as(monkeypatch, moto, moto.user_allowed("kms:Decrypt"))
    ring = await parse_data_keys(text)
    assert ring.kms == reference
    check_ring(ring, new, old)

    # The blobs are bound to their purpose: KMS refuses them without the encryption context.
    blob = base64.urlsafe_b64decode(json.loads(text)["keys"][0]["wrapped_k"] + "==")
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        moto.client("kms").decrypt(CiphertextBlob=blob, KeyId=key_id)


def test_an_unknown_key_is_not_found_and_missing_credentials_are_denied(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, _ = plain_keys()
    act_as(monkeypatch, moto, moto.admin)
    with pytest.raises(SecretNotFound, match="AWS KMS has no such key"):
        envelope("aws-kms://alias/does-not-exist", new)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(SecretAccessDenied, match="no AWS credentials"):
        envelope("aws-kms://alias/does-not-exist", new)


def test_a_blob_wrapped_by_another_key_is_refused(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first = new_kms_key(moto)
    _, second = new_kms_key(moto)
    new, old = plain_keys()
    act_as(monkeypatch, moto, moto.admin)
    text = envelope(f"aws-kms://{first}", new, old)
    moved = text.replace(f"aws-kms://{first}", f"aws-kms://{second}")
    # AWS answers IncorrectKeyException, moto AccessDeniedException: both are refusals.
    with pytest.raises(SecretFetchError, match="AWS KMS") as info:
        parse_data_keys_blocking(moved)
    assert new["k"] not in str(info.value)
