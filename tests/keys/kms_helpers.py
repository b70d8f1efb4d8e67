"""Shared steps of the KMS tests: build an envelope `DATA_KEYS` the way `keys rotate` will, and
check that the unwrapped ring opens values sealed under the plain keys."""

from __future__ import annotations

import json
import time
from typing import Any

from app.keys.data import DataKeyRing, Sealed, field_context, new_data_jwk, wrap_jwk
from app.keys.kms import KmsKeys

CTX = field_context("users", "totp_secret", "3f1d2c3b-0000-4000-8000-000000000001")


def plain_keys() -> tuple[dict[str, Any], dict[str, Any]]:
    """(new, old): the new key encrypts, the old one still decrypts."""
    now = time.time()
    return new_data_jwk(now=now - 5), new_data_jwk(now=now - 86400)


def sealed_under(jwk: dict[str, Any], plaintext: bytes) -> Sealed:
    return DataKeyRing.parse(json.dumps({"keys": [jwk]})).seal(plaintext, CTX)


def envelope(reference: str, *jwks: dict[str, Any], timeout: float = 10.0) -> str:
    with KmsKeys(timeout) as kms:
        document = {"kms": reference, "keys": [wrap_jwk(j, reference, kms.wrap) for j in jwks]}
    text = json.dumps(document)
    for jwk in jwks:
        assert jwk["k"] not in text, "the envelope form must not hold a key in clear"
    return text


def check_ring(ring: DataKeyRing, new: dict[str, Any], old: dict[str, Any]) -> None:
    """The unwrapped ring decrypts what the plain keys sealed, and encrypts with the new key."""
    assert ring.open(sealed_under(old, b"old seed"), CTX) == b"old seed"
    assert ring.open(sealed_under(new, b"new seed"), CTX) == b"new seed"
    current = ring.encrypting_key()
    assert current is not None
    assert current.kid == new["kid"]
    assert ring.weak_key_problems() == []
